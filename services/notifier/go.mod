module github.com/streamwatch/streamwatch/services/notifier

go 1.26.8
