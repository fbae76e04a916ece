// Package service wires the detector: rules loading and the detection
// operator on metrics.windows run by the shared stream service.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/stream"
	"github.com/streamwatch/streamwatch/services/detector/internal/app"
	"github.com/streamwatch/streamwatch/services/detector/internal/config"
	"github.com/streamwatch/streamwatch/services/detector/internal/domain/rule"
)

// Group is the detector's consumer group and checkpoint namespace. Never
// rename it.
const Group = "detector.thresholds"

// LoadRules reads the rules file, or the built-in rules when path is empty.
// Errors name the file, the line and the reason.
func LoadRules(path string) ([]rule.Threshold, error) {
	if path == "" {
		return rule.Parse("built-in rules", []byte(rule.Defaults))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	return rule.Parse(path, data)
}

// Run runs the detector until ctx is done. It fails fast on invalid rules.
func Run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	rules, err := LoadRules(cfg.RulesFile)
	if err != nil {
		return err
	}
	logger.Info("rules loaded", "count", len(rules))
	return stream.RunService(ctx, stream.ServiceConfig{
		Name: "detector", HTTP: cfg.HTTP, Kafka: cfg.Kafka, Redis: cfg.Redis,
		Group: Group, Topic: messaging.TopicMetricsWindows,
	}, app.NewDetect(rules), logger)
}
