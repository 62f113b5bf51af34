package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/workspace"
)

// verifyDB checks the runs and ledger tables: one ready run per video, no
// run in a non-terminal status, and the ledger (holds minus refunds) equal
// to what each balance lost.
func (r *runState) verifyDB(ctx context.Context, s *stack, all []*video) {
	conn, err := pgx.Connect(ctx, s.data.DBURL)
	if err != nil {
		r.problem("connect database: %v", err)
		return
	}
	defer conn.Close(ctx)
	readyRuns := map[string]int{}
	rows, err := conn.Query(ctx, `SELECT video_id, count(*) FILTER (WHERE status = 'ready') FROM runs GROUP BY video_id`)
	if err != nil {
		r.problem("query runs: %v", err)
		return
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			r.problem("scan runs: %v", err)
			return
		}
		readyRuns[id] = n
	}
	if err := rows.Err(); err != nil {
		r.problem("query runs: %v", err)
		return
	}
	bad := 0
	for _, v := range all {
		if readyRuns[v.ID] != 1 {
			bad++
			r.problem("video %s has %d ready runs in the runs table (want 1)", v.ID, readyRuns[v.ID])
		}
	}
	if bad == 0 {
		r.ok("runs table: one ready run for each of the %d videos", len(all))
	}
	var inflight int
	var sample string
	err = conn.QueryRow(ctx, `SELECT count(*), coalesce(string_agg(video_id || ':' || status || '/' || stage, ', '), '')
		FROM runs WHERE status IN ('pending', 'processing', 'stalled')`).Scan(&inflight, &sample)
	switch {
	case err != nil:
		r.problem("query in-flight runs: %v", err)
	case inflight > 0:
		r.problem("%d runs not terminal: %s", inflight, sample)
	default:
		r.ok("runs table: no run pending, processing or stalled")
	}
	rows, err = conn.Query(ctx, `SELECT u.id, u.balance,
		coalesce(sum(CASE l.kind WHEN 'hold' THEN l.amount WHEN 'refund' THEN -l.amount ELSE 0 END), 0)
		FROM users u LEFT JOIN ledger_entries l ON l.user_id = u.id GROUP BY u.id, u.balance ORDER BY u.id`)
	if err != nil {
		r.problem("query ledger: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var balance, spent int64
		if err := rows.Scan(&id, &balance, &spent); err != nil {
			r.problem("scan ledger: %v", err)
			return
		}
		if balance+spent != 100 {
			r.problem("ledger of %s: balance %d + holds-refunds %d != 100", id, balance, spent)
		} else {
			r.ok("ledger of %s: balance %d + (holds - refunds) %d = 100 granted", id, balance, spent)
		}
	}
	if err := rows.Err(); err != nil {
		r.problem("query ledger: %v", err)
	}
}

// report renders the run's report.
func (r *runState) report(s *stack, w *workload) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	host, _ := os.Hostname()
	p("")
	p("Backbeat chaos report — %s (host %s)", r.start.UTC().Format("2006-01-02 15:04:05 UTC"), host)
	p("shape: 3 nats-server nodes (deployments/nats/nats.conf, R3 streams), api, render-coordinator, audio,")
	p("       gpu-renderer pool gpu, gpu-renderer pool cpu, cdn, thumbnail; Postgres; MinIO")
	if w != nil {
		p("videos: %d s regions, square, bundles pro (gpu pool) and free (cpu pool), %s apart", int(w.end-w.start), s.o.stagger)
	}
	p("")
	p("faults (t = seconds since the run started):")
	for _, e := range r.events {
		line := fmt.Sprintf("  t=%6.1fs  %s  [%s] %s", e.At.Sub(r.start).Seconds(), e.At.UTC().Format("15:04:05.000"), e.Phase, e.What)
		if e.Detail != "" {
			line += ": " + e.Detail
		}
		p("%s", line)
	}
	if w != nil {
		p("")
		p("create→ready latency (create = POST /v1/videos answered, ready = first GET showing ready, polled every %s):", w.poll)
		p("  %-17s %6s %6s %8s %8s %8s %10s %10s %s", "phase", "videos", "ready", "p50", "p99", "max", "Δp50", "Δp99", "load avg")
		base := lat(w.inPhase("baseline"))
		b50, b99 := percentile(base, 50), percentile(base, 99)
		for _, phase := range append([]string{"warmup", "baseline"}, faultNames()...) {
			vs := w.inPhase(phase)
			if len(vs) == 0 {
				continue
			}
			ls := lat(vs)
			p50, p99 := percentile(ls, 50), percentile(ls, 99)
			d50, d99 := "", ""
			if phase != "baseline" && phase != "warmup" {
				d50, d99 = signed(p50-b50), signed(p99-b99)
			}
			p("  %-17s %6d %6d %7.1fs %7.1fs %7.1fs %10s %10s %s", phase, len(vs), len(ls), p50.Seconds(), p99.Seconds(),
				percentile(ls, 100).Seconds(), d50, d99, r.loads[phase])
		}
		ready := 0
		for _, v := range w.videos {
			if v.Final == "ready" {
				ready++
			}
		}
		p("")
		p("videos rendered: %d submitted, %d ready", len(w.videos), ready)
	}
	p("webhooks: %s", r.webhooks)
	p("error-level log lines per service: %s", strings.Join(r.logErrors, ", "))
	for _, f := range r.findings {
		p("FINDING (does not fail the run): %s", f)
	}
	p("checks passed:")
	for _, c := range r.checks {
		p("  ok    %s", c)
	}
	if len(r.problems) > 0 {
		p("checks FAILED:")
		for _, c := range r.problems {
			p("  FAIL  %s", c)
		}
	}
	p("load average at the end: %s (%d CPUs)", workspace.LoadAvg(), numCPU())
	p("wall time: %s", time.Since(r.start).Round(time.Second))
	if len(r.problems) == 0 {
		p("chaos: PASS")
	} else {
		p("chaos: FAIL (%d problems)", len(r.problems))
	}
	return b.String()
}

func faultNames() []string {
	var out []string
	for _, f := range faults {
		out = append(out, f.name)
	}
	return out
}

// lat is the create→ready latencies of the ready videos.
func lat(vs []*video) []time.Duration {
	var out []time.Duration
	for _, v := range vs {
		if d := v.latency(); d > 0 {
			out = append(out, d)
		}
	}
	return out
}

func signed(d time.Duration) string { return fmt.Sprintf("%+.1fs", d.Seconds()) }
