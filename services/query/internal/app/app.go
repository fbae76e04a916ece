// Package app holds the query service's use cases: the commands that
// project Kafka records into ClickHouse and Redis, and the queries the REST
// API answers. Each use case declares the small interfaces it needs; the
// adapters implement them.
package app

import (
	"github.com/streamwatch/streamwatch/services/query/internal/app/command"
	"github.com/streamwatch/streamwatch/services/query/internal/app/query"
)

// Application is every use case of the query service, as the ports call
// them.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands change the projections.
type Commands struct {
	ProjectEvents       command.ProjectEventsHandler
	ProjectWindow       command.ProjectWindowHandler
	ProjectAlert        command.ProjectAlertHandler
	ProjectNotification command.ProjectNotificationHandler
	RunBatch            command.RunBatchHandler
	Admin               command.AdminHandler
}

// Queries read the projections.
type Queries struct {
	Series query.SeriesHandler
	Live   query.LiveHandler
	Top    query.LiveTopHandler
	Search query.SearchHandler
	Batch  query.BatchReportHandler
	Admin  query.AdminReader
	// Notifications reads the latest notification outcomes.
	Notifications query.NotificationsHandler
	// Pipeline reads consumer lag and late / dead-letter record counts.
	Pipeline query.PipelineHandler
}
