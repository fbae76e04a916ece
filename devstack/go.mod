module github.com/streamwatch/streamwatch/devstack

go 1.26.8
