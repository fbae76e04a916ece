module github.com/streamwatch/streamwatch/services/aggregator

go 1.26.8
