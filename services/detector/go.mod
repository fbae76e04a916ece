module github.com/streamwatch/streamwatch/services/detector

go 1.26.8
