module github.com/streamwatch/streamwatch/services/collector

go 1.26.8
