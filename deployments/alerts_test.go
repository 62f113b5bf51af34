package deployments

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

// alertsFile is the example Prometheus rules file this folder ships.
const alertsFile = "prometheus/alerts.yaml"

// promQL is the PromQL parser Prometheus uses by default.
var promQL = parser.NewParser(parser.Options{})

// alertRules parses alertsFile as Prometheus does (rulefmt, unknown fields
// refused), failing on any error, and returns its rules.
func alertRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	rgs, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promQL, promslog.NewNopLogger())
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	var out []rulefmt.Rule
	for _, g := range rgs.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rule", alertsFile)
	}
	return out
}

// TestAlertRulesLoad: the rules file loads in Prometheus's own parser and
// validator; every rule is an alert with a `for`, a severity of critical or
// warning, a summary, a description and a runbook that is a heading of
// README.md; alert names are unique.
func TestAlertRulesLoad(t *testing.T) {
	anchors := headingAnchors(readme(t))
	seen := map[string]bool{}
	for _, r := range alertRules(t) {
		name := r.Alert
		if name == "" {
			t.Errorf("recording rule %q: the file is alert rules only", r.Record)
			continue
		}
		if seen[name] {
			t.Errorf("%s: two rules of that name", name)
		}
		seen[name] = true
		if r.For <= 0 {
			t.Errorf("%s: no `for`: one bad evaluation would fire it", name)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", name, s)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", name, a)
			}
		}
		file, anchor, _ := strings.Cut(r.Annotations["runbook"], "#")
		if file != "deployments/README.md" || !anchors[anchor] {
			t.Errorf("%s: runbook %q is not deployments/README.md#<a heading of it>", name, r.Annotations["runbook"])
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown
// text (outside code blocks): lower case, spaces to hyphens, punctuation
// other than - and _ dropped.
func headingAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	in := false
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		title, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if in || !ok || !strings.HasPrefix(line, "#") {
			continue
		}
		anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(title)), ""), " ", "-")] = true
	}
	return anchors
}

// TestAlertRulesUseDocumentedMetrics: every metric an alert expression
// selects is in the README's Metrics table (which the code keeps equal to what
// it registers) or is the _bucket, _count or _sum series of one, so renaming
// a metric breaks the rule here and not silently in production.
func TestAlertRulesUseDocumentedMetrics(t *testing.T) {
	documented := readmeMetrics(t)
	for _, r := range alertRules(t) {
		expr, err := promQL.ParseExpr(r.Expr)
		if err != nil {
			t.Fatalf("%s: %v", r.Alert, err)
		}
		selected := 0
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			selected++
			name := vs.Name
			if name == "" {
				t.Errorf("%s: a selector without a metric name (%s)", r.Alert, vs)
				return nil
			}
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && documented[b] {
					base = b
				}
			}
			if !documented[base] {
				t.Errorf("%s selects %s, which is not in the README's Metrics table", r.Alert, name)
			}
			return nil
		})
		if selected == 0 {
			t.Errorf("%s: its expression selects no metric", r.Alert)
		}
	}
}

// TestReadmeAlertRulesMatchTheFile: the README's "Alert rules" section has a
// "### Name" heading for every rule of the file and none for anything else.
func TestReadmeAlertRulesMatchTheFile(t *testing.T) {
	inFile := map[string]string{}
	for _, r := range alertRules(t) {
		inFile[r.Alert] = alertsFile
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^### (\S+)$`).FindAllStringSubmatch(section(t, readme(t), "Alert rules"), -1) {
		documented[m[1]] = true
	}
	sameSets(t, "alert rule", "Alert rules", inFile, documented)
}

// Bucket bounds of the code's histograms (pkg/bus/metrics.go and
// services/api/service.go), computed as client_golang's ExponentialBuckets
// does, so the le labels are the ones Prometheus scrapes.
var (
	queueWaitBuckets  = expBuckets(0.0005, 4, 12)
	apiLatencyBuckets = expBuckets(0.001, 2, 17)
)

func expBuckets(start, factor float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start
		start *= factor
	}
	return out
}

// histogram returns promqltest series of the histogram name{lbl} in which
// every observation is v: seq (a promqltest value sequence, e.g. "0+2x90")
// is the cumulative count of observations; buckets below v stay 0.
func histogram(name, lbl string, bounds []float64, v float64, seq string) string {
	var b strings.Builder
	for _, le := range bounds {
		s := "0x90"
		if v <= le {
			s = seq
		}
		fmt.Fprintf(&b, "%s_bucket{%s,le=%q} %s\n", name, lbl, strconv.FormatFloat(le, 'f', -1, 64), s)
	}
	fmt.Fprintf(&b, "%s_bucket{%s,le=\"+Inf\"} %s\n", name, lbl, seq)
	fmt.Fprintf(&b, "%s_count{%s} %s\n", name, lbl, seq)
	return b.String()
}

func queueWait(consumer string, v float64, seq string) string {
	return histogram("backbeat_job_queue_wait_seconds", `step="render",consumer="`+consumer+`"`, queueWaitBuckets, v, seq)
}

func stepWait(step, consumer string, v float64, seq string) string {
	return histogram("backbeat_job_queue_wait_seconds", `step="`+step+`",consumer="`+consumer+`"`, queueWaitBuckets, v, seq)
}

func apiLatency(route string, v float64, seq string) string {
	return histogram("backbeat_api_request_duration_seconds", `route="`+route+`"`, apiLatencyBuckets, v, seq)
}

// alertCases are, for every rule of alertsFile, series on which it must fire
// (with those labels) and series of the same metrics, healthy for this
// product, on which no rule of the file fires. Series are promqltest's load
// syntax at one sample a minute over scenarioMinutes; "_" is no sample.
var alertCases = []struct {
	alert   string
	labels  map[string]string
	bad     []string
	healthy []string
}{{
	alert:  "BackbeatRenderQueueWaitHigh",
	labels: map[string]string{"consumer": "render-gpu-high", "severity": "critical"},
	// Label renders waiting a minute each.
	bad: []string{queueWait("render-gpu-high", 60, "0+2x90")},
	healthy: []string{
		// Label renders picked up in seconds; free ones waiting 5 minutes.
		queueWait("render-gpu-high", 5, "0+2x90") + queueWait("render-cpu-low", 300, "0+2x90"),
		// A cold start of the GPU pool: three renders wait 4 minutes at once.
		queueWait("render-gpu-high", 240, "0x10 3x80"),
	},
}, {
	alert:   "BackbeatRenderQueueWaitNormal",
	labels:  map[string]string{"consumer": "render-cpu-normal", "severity": "warning"},
	bad:     []string{queueWait("render-cpu-normal", 200, "0+1x90")},
	healthy: []string{queueWait("render-cpu-normal", 100, "0+1x90")},
}, {
	alert:   "BackbeatRenderQueueWaitLow",
	labels:  map[string]string{"consumer": "render-cpu-low", "severity": "warning"},
	bad:     []string{queueWait("render-cpu-low", 900, "0+1x90")},
	healthy: []string{queueWait("render-cpu-low", 300, "0+1x90")},
}, {
	alert:  "BackbeatCoordinatorLagging",
	labels: map[string]string{"severity": "critical"},
	// Every event waits 20 s for the coordinator.
	bad: []string{stepWait("coordinator", "coordinator", 20, "0+50x90")},
	// Events handled in 100 ms; a notify job retried for minutes (a webhook down).
	healthy: []string{stepWait("coordinator", "coordinator", 0.1, "0+50x90") + stepWait("notify", "notify", 600, "0+1x90")},
}, {
	alert:  "BackbeatStepQueueWaitHigh",
	labels: map[string]string{"consumer": "audio", "severity": "warning"},
	bad:    []string{stepWait("audio", "audio", 60, "0+2x90")},
	// Audio and cdn jobs picked up at once.
	healthy: []string{stepWait("audio", "audio", 0.05, "0+2x90") + stepWait("cdn", "cdn", 0.01, "0+2x90")},
}, {
	alert:  "BackbeatRunsStalling",
	labels: map[string]string{"stage": "render", "pool": "gpu", "severity": "critical"},
	bad: []string{
		// A series the coordinator creates with its first stall, then two more.
		`backbeat_runs_stalled_total{stage="render",pool="gpu"} _x30 1 2 3x58`,
		// A series that existed, climbing by 4.
		`backbeat_runs_stalled_total{stage="render",pool="gpu"} 1x30 2 3 4 5x57`,
	},
	healthy: []string{
		// A stall every 20 minutes, and a new series with one.
		`backbeat_runs_stalled_total{stage="audio"} 0x10 1x20 2x20 3x40
		backbeat_runs_stalled_total{stage="render",pool="cpu"} _x40 1x50`,
	},
}, {
	alert:  "BackbeatNVENCFallback",
	labels: map[string]string{"pool": "gpu", "instance": "gpu-renderer-gpu-0:9090", "severity": "warning"},
	bad:    []string{`backbeat_nvenc_fallbacks_total{pool="gpu",instance="gpu-renderer-gpu-0:9090"} _x20 1+1x70`},
	// The cpu pool has no GPU: its fallbacks are expected.
	healthy: []string{`backbeat_nvenc_fallbacks_total{pool="cpu",instance="gpu-renderer-cpu-0:9090"} _x20 1+1x70`},
}, {
	alert:  "BackbeatStepPanics",
	labels: map[string]string{"step": "audio", "severity": "critical"},
	bad: []string{
		// The first panic of a pod: its series appears at 1.
		`backbeat_jobs_handled_total{step="audio",outcome="ack"} 0+10x90
		backbeat_jobs_handled_total{step="audio",outcome="panic"} _x40 1x50`,
		// A pod's second panic.
		`backbeat_jobs_handled_total{step="audio",outcome="ack"} 0+10x90
		backbeat_jobs_handled_total{step="audio",outcome="panic"} 1x40 2x50`,
	},
	healthy: []string{`backbeat_jobs_handled_total{step="audio",outcome="ack"} 0+10x90
		backbeat_jobs_handled_total{step="audio",outcome="retry"} 0+1x90`},
}, {
	alert:  "BackbeatStepTerminating",
	labels: map[string]string{"step": "render", "severity": "warning"},
	bad: []string{`backbeat_jobs_handled_total{step="render",outcome="ack"} 0+10x90
		backbeat_jobs_handled_total{step="render",outcome="term"} 0+2x90`},
	// Some bad input: 1 message in 100.
	healthy: []string{`backbeat_jobs_handled_total{step="render",outcome="ack"} 0+100x90
		backbeat_jobs_handled_total{step="render",outcome="term"} 0+1x90`},
}, {
	alert:  "BackbeatWebhookDeliveriesFailing",
	labels: map[string]string{"severity": "warning"},
	bad: []string{`backbeat_webhook_deliveries_total{outcome="ok"} 0+2x90
		backbeat_webhook_deliveries_total{outcome="failed"} 0+2x90`},
	healthy: []string{`backbeat_webhook_deliveries_total{outcome="ok"} 0+10x90
		backbeat_webhook_deliveries_total{outcome="failed"} 0+1x90`},
}, {
	alert:  "BackbeatEdgeCacheHitRatioLow",
	labels: map[string]string{"severity": "warning"},
	bad: []string{
		`backbeat_edge_requests_total{cache="hit"} 0+30x90
		backbeat_edge_requests_total{cache="miss"} 0+60x90`,
		// An edge that never hits has no hit series.
		`backbeat_edge_requests_total{cache="miss"} 0+60x90`,
	},
	healthy: []string{
		`backbeat_edge_requests_total{cache="hit"} 0+90x90
		backbeat_edge_requests_total{cache="miss"} 0+10x90`,
		// A quiet edge: 3 objects a minute, nearly all misses.
		`backbeat_edge_requests_total{cache="hit"} 0x30 1x60
		backbeat_edge_requests_total{cache="miss"} 0+3x90`,
	},
}, {
	alert:  "BackbeatAPILatencyHigh",
	labels: map[string]string{"route": "create", "severity": "warning"},
	bad:    []string{apiLatency("create", 2, "0+10x90")},
	// Fast creates; uploads take as long as the client's upload.
	healthy: []string{apiLatency("create", 0.05, "0+10x90") + apiLatency("upload", 30, "0+10x90")},
}, {
	alert:  "BackbeatAPIErrors",
	labels: map[string]string{"route": "create", "severity": "critical"},
	bad: []string{`backbeat_api_requests_total{route="create",code="201"} 0+90x90
		backbeat_api_requests_total{route="create",code="500"} 0+10x90`},
	healthy: []string{
		`backbeat_api_requests_total{route="create",code="201"} 0+100x90
		backbeat_api_requests_total{route="create",code="500"} 0+1x90`,
		// One 503 on a quiet route.
		`backbeat_api_requests_total{route="me",code="200"} 0+1x90
		backbeat_api_requests_total{route="me",code="503"} 0x40 1x50`,
	},
}}

// scenarioMinutes is how long each case is evaluated, once a minute: longer
// than the longest window plus `for` of the file (30m + 30m).
const scenarioMinutes = 90

// TestAlertRulesFire evaluates the rules file, loaded by Prometheus's rule
// manager, with Prometheus's engine once a minute over each case's series, as
// `promtool test rules` does: each rule fires on its bad series with the
// expected labels, and no rule fires at any time on a healthy one. Every rule
// of the file must have a case.
func TestAlertRulesFire(t *testing.T) {
	inFile := map[string]bool{}
	for _, r := range alertRules(t) {
		inFile[r.Alert] = true
	}
	for _, c := range alertCases {
		if !inFile[c.alert] {
			t.Errorf("a case for %s, which is not a rule of %s", c.alert, alertsFile)
		}
		delete(inFile, c.alert)
	}
	for _, name := range slices.Sorted(maps.Keys(inFile)) {
		t.Errorf("%s has no case in alertCases: add series on which it fires and healthy ones", name)
	}
	for _, c := range alertCases {
		t.Run(c.alert, func(t *testing.T) {
			if len(c.bad) == 0 || len(c.healthy) == 0 {
				t.Fatal("a case needs bad and healthy series")
			}
			for i, series := range c.bad {
				fired := false
				evalRules(t, series, func(minute int, firing []labels.Labels) {
					for _, l := range firing {
						if l.Get("alertname") == c.alert && hasLabels(l, c.labels) {
							fired = true
						}
					}
				})
				if !fired {
					t.Errorf("bad case %d: %s never fired with %v in %d minutes", i, c.alert, c.labels, scenarioMinutes)
				}
			}
			for i, series := range c.healthy {
				evalRules(t, series, func(minute int, firing []labels.Labels) {
					for _, l := range firing {
						t.Errorf("healthy case %d: at minute %d, %s fires", i, minute, l)
					}
				})
			}
		})
	}
}

func hasLabels(l labels.Labels, want map[string]string) bool {
	for k, v := range want {
		if l.Get(k) != v {
			return false
		}
	}
	return true
}

// evalRules loads series (promqltest load syntax, one sample a minute),
// loads alertsFile into a Prometheus rule manager on it, evaluates every
// group once a minute from 0 to scenarioMinutes and calls each with the
// labels of the alerts firing after each evaluation.
func evalRules(t *testing.T, series string, each func(minute int, firing []labels.Labels)) {
	t.Helper()
	suite, err := promqltest.NewLazyLoader("load 1m\n"+series, promqltest.LazyLoaderOpts{EnableAtModifier: true, EnableNegativeOffset: true})
	if err != nil {
		t.Fatalf("series: %v\n%s", err, series)
	}
	defer func() {
		if err := suite.Close(); err != nil {
			t.Error(err)
		}
	}()
	m := rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		QueryFunc:            rules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		Appendable:           suite.Storage(),
		Context:              context.Background(),
		NotifyFunc:           func(context.Context, string, ...*rules.Alert) {},
		Logger:               promslog.NewNopLogger(),
		Parser:               promQL,
	})
	groups, errs := m.LoadGroups(time.Minute, labels.EmptyLabels(), "", nil, false, alertsFile)
	for _, err := range errs {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, r := range g.Rules() {
			if a, ok := r.(*rules.AlertingRule); ok {
				a.SetRestored(true) // as after a run: `for` counts from the first evaluation
			}
		}
	}
	for minute := 0; minute <= scenarioMinutes; minute++ {
		ts := time.Unix(0, 0).UTC().Add(time.Duration(minute) * time.Minute)
		var firing []labels.Labels
		suite.WithSamplesTill(ts, func(err error) {
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range groups {
				g.Eval(suite.Context(), ts)
				for _, r := range g.Rules() {
					if err := r.LastError(); err != nil {
						t.Fatalf("%s at minute %d: %v", r.Name(), minute, err)
					}
					a, ok := r.(*rules.AlertingRule)
					if !ok {
						continue
					}
					for _, alert := range a.ActiveAlerts() {
						if alert.State == rules.StateFiring {
							firing = append(firing, alert.Labels)
						}
					}
				}
			}
		})
		each(minute, firing)
	}
}
