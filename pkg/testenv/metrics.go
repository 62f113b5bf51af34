package testenv

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Counter is the value of the counter name whose label values are labels,
// in the order of the label names sorted (as Prometheus gathers them), in
// reg; 0 when it has no such series yet.
func Counter(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
			if strings.Join(got, "\x00") == strings.Join(labels, "\x00") {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
