module github.com/streamwatch/streamwatch/services/query

go 1.26.8
