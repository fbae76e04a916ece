// Package bench is Streamwatch's end-to-end benchmark: it drives the
// embedded stack (devstack/stack) with the load generator (devstack/loadgen)
// as fast as the collector accepts for a fixed duration, then at half the
// sustainable rate found, and measures what the targets name:
//
//   - events/s accepted by the collector and events/s fully processed
//     (counted in the aggregator's events_by_type window results in
//     ClickHouse, with the generator's exact tally checked against them and
//     against the raw events table: zero loss);
//   - end-to-end latency of probe events (collector receive → visible in
//     GET /api/v1/live; threshold breach → webhook delivered);
//   - CPU seconds and peak RSS per process from /proc;
//   - consumer lag per group over time (kadm);
//   - the ceiling of the machine: the embedded broker path alone, producing
//     and consuming the collector's own batch records with franz-go and
//     decoding them with pkg/events;
//   - optionally, CPU profiles of every service taken with perf(1).
//
// Run writes <date>-<host>.md, .json and PNG plots (gonum.org/v1/plot). The
// command is devstack/cmd/streamwatch-bench; `make bench` runs it. It is a
// benchmark, not a test: nothing here runs under `go test` except the pure
// parts (statistics and report rendering).
package bench
