package metrics

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamwatch/streamwatch/pkg/events"
)

// ErrInvalidDefinition is wrapped by every definition error.
var ErrInvalidDefinition = errors.New("invalid metric definition")

//go:embed defaults.yaml
var defaultsYAML []byte

// DefaultsFile is the name under which the built-in set is reported in
// errors.
const DefaultsFile = "builtin:defaults.yaml"

// Defaults returns the built-in metric set (pkg/metrics/defaults.yaml),
// compiled. It fails only if the embedded file is broken, which a unit test
// rules out.
func Defaults() ([]Definition, error) {
	return ParseDefinitions(DefaultsFile, defaultsYAML)
}

// DefaultDefinitions returns Defaults and panics if the embedded file is
// broken (a unit test guarantees it is not).
func DefaultDefinitions() []Definition {
	defs, err := Defaults()
	if err != nil {
		panic(err)
	}
	return defs
}

// LoadDefinitions reads and parses a definitions file (see
// ParseDefinitions).
func LoadDefinitions(path string) ([]Definition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDefinition, err)
	}
	return ParseDefinitions(path, b)
}

// yamlFile is the document shape:
//
//	metrics:
//	  - name: requests
//	    description: ...
//	    types: [http_request, service_request]
//	    where: [{field: status, gte: 500}]
//	    group_by: [status_class]
//	    value: latency_ms
//	    unit: ms
//	    aggregations: [p95, p99, avg]
//	    distinct: user_id
//	    topk: {field: page, n: 10}
//	    window: {kind: tumbling, size: 1m}   # hopping: size + slide; session: gap
//	    out_of_orderness: 5s
//	    allowed_lateness: 1m
//	    early_interval: 1s
type yamlFile struct {
	Metrics []yamlDef `yaml:"metrics"`
}

type yamlDef struct {
	line            int
	Name            string          `yaml:"name"`
	Description     string          `yaml:"description"`
	Types           []string        `yaml:"types"`
	Where           []yamlPredicate `yaml:"where"`
	GroupBy         []string        `yaml:"group_by"`
	Value           string          `yaml:"value"`
	Unit            string          `yaml:"unit"`
	Aggregations    []string        `yaml:"aggregations"`
	Distinct        string          `yaml:"distinct"`
	TopK            *yamlTopK       `yaml:"topk"`
	Window          *yamlWindow     `yaml:"window"`
	OutOfOrderness  *time.Duration  `yaml:"out_of_orderness"`
	AllowedLateness *time.Duration  `yaml:"allowed_lateness"`
	EarlyInterval   *time.Duration  `yaml:"early_interval"`
}

type yamlPredicate struct {
	Field  string   `yaml:"field"`
	Equals *string  `yaml:"equals"`
	In     []string `yaml:"in"`
	Prefix *string  `yaml:"prefix"`
	Gte    *float64 `yaml:"gte"`
	Gt     *float64 `yaml:"gt"`
	Lte    *float64 `yaml:"lte"`
	Lt     *float64 `yaml:"lt"`
}

type yamlTopK struct {
	Field string `yaml:"field"`
	N     int    `yaml:"n"`
}

type yamlWindow struct {
	Kind  string        `yaml:"kind"`
	Size  time.Duration `yaml:"size"`
	Slide time.Duration `yaml:"slide"`
	Gap   time.Duration `yaml:"gap"`
}

// ParseDefinitions parses a YAML definitions document (see the package's
// defaults.yaml for the format) and compiles every definition. It refuses
// unknown keys, duplicate names, unknown fields, types and aggregations and
// inconsistent windows. Errors wrap ErrInvalidDefinition and read
// "file:line: reason" (all problems, joined), with the line of the offending
// key or metric.
func ParseDefinitions(file string, data []byte) ([]Definition, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidDefinition, file, err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%w: %s:1: empty document (want a top-level \"metrics\" list)", ErrInvalidDefinition, file)
	}
	var errs []error
	checkKeys(file, root.Content[0], reflect.TypeOf(yamlFile{}), &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var doc yamlFile
	if err := root.Content[0].Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidDefinition, file, err)
	}
	if len(doc.Metrics) == 0 {
		return nil, fmt.Errorf("%w: %s:%d: no metrics defined", ErrInvalidDefinition, file, root.Content[0].Line)
	}
	items := metricNodes(root.Content[0])
	defs := make([]Definition, 0, len(doc.Metrics))
	names := map[string]int{}
	for i, y := range doc.Metrics {
		line := 0
		if i < len(items) {
			line = items[i].Line
		}
		d := y.definition()
		if err := d.Compile(); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: metric %q: %w", file, line, d.Name, err))
			continue
		}
		if prev, dup := names[d.Name]; dup {
			errs = append(errs, fmt.Errorf("%w: %s:%d: metric %q: name already defined at line %d", ErrInvalidDefinition, file, line, d.Name, prev))
			continue
		}
		names[d.Name] = line
		defs = append(defs, d)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return defs, nil
}

func (y *yamlDef) definition() Definition {
	d := Definition{
		Name: y.Name, Description: y.Description, GroupBy: y.GroupBy, Value: y.Value, Unit: y.Unit,
		Aggregations: y.Aggregations, Distinct: y.Distinct,
	}
	for _, t := range y.Types {
		d.Types = append(d.Types, events.Type(t))
	}
	for _, p := range y.Where {
		d.Where = append(d.Where, Predicate{Field: p.Field, Equals: p.Equals, In: p.In, Prefix: p.Prefix, Gte: p.Gte, Gt: p.Gt, Lte: p.Lte, Lt: p.Lt})
	}
	if y.TopK != nil {
		d.TopK = TopKSpec{Field: y.TopK.Field, N: y.TopK.N}
	}
	if y.Window != nil {
		d.Window = WindowSpec{Kind: y.Window.Kind, Size: y.Window.Size, Slide: y.Window.Slide, Gap: y.Window.Gap}
	}
	if y.OutOfOrderness != nil {
		d.OutOfOrderness = *y.OutOfOrderness
	}
	if y.AllowedLateness != nil {
		d.AllowedLateness, d.LatenessSet = *y.AllowedLateness, true
	}
	if y.EarlyInterval != nil {
		d.EarlyInterval = *y.EarlyInterval
	}
	return d
}

func metricNodes(doc *yaml.Node) []*yaml.Node {
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "metrics" && doc.Content[i+1].Kind == yaml.SequenceNode {
			return doc.Content[i+1].Content
		}
	}
	return nil
}

// checkKeys walks n against the yaml-tagged struct type t and records every
// mapping key t does not declare, with its line.
func checkKeys(file string, n *yaml.Node, t reflect.Type, errs *[]error) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				checkKeys(file, c, t.Elem(), errs)
			}
			return
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Duration(0)) {
		return
	}
	if n.Kind != yaml.MappingNode {
		*errs = append(*errs, fmt.Errorf("%w: %s:%d: expected a mapping, got %s", ErrInvalidDefinition, file, n.Line, nodeKind(n)))
		return
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" {
			name := strings.Split(tag, ",")[0]
			fields[name] = t.Field(i).Type
			names = append(names, name)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			*errs = append(*errs, fmt.Errorf("%w: %s:%d: unknown key %q (known: %s)", ErrInvalidDefinition, file, k.Line, k.Value, strings.Join(names, ", ")))
			continue
		}
		checkKeys(file, n.Content[i+1], ft, errs)
	}
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	}
	return "something else"
}
