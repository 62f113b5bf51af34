package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/backbeat/backbeat/pkg/bus"
)

// percentile is the p-th percentile (nearest rank) of ds, 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}

// median is the median of xs (the mean of the two middle ones for an even
// count), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// point is one run of a level, reduced to the figures the report shows.
type point struct {
	videos                                   int
	overheadP50, overheadP99                 float64
	busyP50, totalP50                        float64
	pickupP50, pickupP99, handoffP50, hopP50 map[string]float64
	eventsPerSec, videosPerSec, eventsPerVid float64
	// sqlPerEvent is SQL statements per event handled (dev shapes).
	sqlPerEvent float64
	// cpuPerEvent is CPU ms per event handled of each part of stack.cpu.
	cpuPerEvent map[string]float64
}

// reduce turns a level's result into its point.
func reduce(r *levelResult) point {
	p := point{videos: len(r.figs), pickupP50: map[string]float64{}, pickupP99: map[string]float64{},
		handoffP50: map[string]float64{}, hopP50: map[string]float64{}}
	var over, busy, total []time.Duration
	pick, hand, hop := map[string][]time.Duration{}, map[string][]time.Duration{}, map[string][]time.Duration{}
	for _, f := range r.figs {
		over, busy, total = append(over, f.overhead), append(busy, f.busy), append(total, f.total)
		for k, v := range f.pickup {
			pick[k] = append(pick[k], v)
		}
		for k, v := range f.handoffs {
			hand[k] = append(hand[k], v)
		}
		for k, v := range f.hops {
			hop[k] = append(hop[k], v)
		}
	}
	p.overheadP50, p.overheadP99 = ms(percentile(over, 50)), ms(percentile(over, 99))
	p.busyP50, p.totalP50 = ms(percentile(busy, 50)), ms(percentile(total, 50))
	for k, v := range pick {
		p.pickupP50[k], p.pickupP99[k] = ms(percentile(v, 50)), ms(percentile(v, 99))
	}
	for k, v := range hand {
		p.handoffP50[k] = ms(percentile(v, 50))
	}
	for k, v := range hop {
		p.hopP50[k] = ms(percentile(v, 50))
	}
	if secs := r.window.Seconds(); secs > 0 {
		p.eventsPerSec = float64(r.events) / secs
		p.videosPerSec = float64(len(r.figs)) / secs
	}
	p.cpuPerEvent = map[string]float64{}
	if r.events > 0 {
		p.sqlPerEvent = float64(r.statements) / float64(r.events)
		for k, d := range r.cpu {
			p.cpuPerEvent[k] = ms(d) / float64(r.events)
		}
	}
	if r.level.videos > 0 {
		p.eventsPerVid = float64(r.eventsAll) / float64(r.level.videos)
	}
	return p
}

// series are the runs of one shape and level.
type series struct {
	shape  string
	level  level
	points []point
}

// med is the median over the runs of one figure.
func (s *series) med(f func(point) float64) float64 {
	var xs []float64
	for _, p := range s.points {
		xs = append(xs, f(p))
	}
	return median(xs)
}

// cpu is the median CPU ms per event of each part, "part 1.2, other 3.4".
func (s *series) cpu() string {
	var parts []string
	if len(s.points) > 0 {
		for k := range s.points[0].cpuPerEvent {
			parts = append(parts, k)
		}
	}
	slices.Sort(parts)
	var out []string
	for _, k := range parts {
		out = append(out, fmt.Sprintf("%s %.1f", k, s.med(func(p point) float64 { return p.cpuPerEvent[k] })))
	}
	return strings.Join(out, ", ")
}

// header is what the report says of the machine and the method.
type header struct {
	date                  time.Time
	loadBefore, loadAfter string
	fsync                 string
	o                     options
}

// render writes the report: a summary table a row per shape and level, then
// where the time goes, in Markdown that pastes into docs/benchmarks.md.
func render(h header, all []*series) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Pipeline overhead with stub workers, %s; %d cores; load average before %s, after %s; "+
		"Postgres fsync=%s; %d run(s) per point, medians over the runs.\n\n",
		h.date.Format("2006-01-02 15:04 MST"), numCPU(), h.loadBefore, h.loadAfter, h.fsync, h.o.runs)
	b.WriteString("| shape | in flight | videos | overhead p50 | overhead p99 | pickup p50 audio / render / cdn | events/s | videos/s | events/video | SQL/event |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range all {
		pk := func(step string) float64 { return s.med(func(p point) float64 { return p.pickupP50[step] }) }
		sql := "n/a"
		if v := s.med(func(p point) float64 { return p.sqlPerEvent }); v > 0 {
			sql = fmt.Sprintf("%.1f", v)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.1f ms | %.1f ms | %.1f / %.1f / %.1f ms | %.0f | %.1f | %.1f | %s |\n",
			s.shape, s.level.inflight, s.level.videos,
			s.med(func(p point) float64 { return p.overheadP50 }), s.med(func(p point) float64 { return p.overheadP99 }),
			pk(bus.StepAudio), pk(bus.StepRender), pk(bus.StepCDN),
			s.med(func(p point) float64 { return p.eventsPerSec }), s.med(func(p point) float64 { return p.videosPerSec }),
			s.med(func(p point) float64 { return p.eventsPerVid }), sql)
	}
	b.WriteString("\nWhere the time goes (p50 per video, ms): the coordinator's turns (event seen on the bus → next job seen), " +
		"each worker's pickup (bus.QueueWait) and its hand-off (job seen → done event seen, minus its busy time).\n\n")
	b.WriteString("| shape | in flight |")
	for _, h := range coordinatorHops {
		fmt.Fprintf(&b, " %s |", h.name)
	}
	for _, st := range pathSteps {
		fmt.Fprintf(&b, " %s pickup / hand-off |", st)
	}
	b.WriteString(" busy (Σ stubs) | create→ready | CPU ms/event |\n|" + strings.Repeat(" --- |", 2) + strings.Repeat(" ---: |", len(coordinatorHops)+len(pathSteps)+3) + "\n")
	for _, s := range all {
		fmt.Fprintf(&b, "| %s | %d |", s.shape, s.level.inflight)
		for _, h := range coordinatorHops {
			fmt.Fprintf(&b, " %.1f |", s.med(func(p point) float64 { return p.hopP50[h.name] }))
		}
		for _, st := range pathSteps {
			fmt.Fprintf(&b, " %.1f / %.1f |", s.med(func(p point) float64 { return p.pickupP50[st] }),
				s.med(func(p point) float64 { return p.handoffP50[st] }))
		}
		fmt.Fprintf(&b, " %.1f | %.1f | %s |\n", s.med(func(p point) float64 { return p.busyP50 }), s.med(func(p point) float64 { return p.totalP50 }), s.cpu())
	}
	fmt.Fprintf(&b, "\nMethod: scripts/bench/pipeline.sh (cmd/backbeat/internal/pipebench). Stub workers (real bus.Step on the real "+
		"consumers: audio; a renderer per pool on its high/normal/low durables; cdn; thumbnail; %d jobs at a time each) write "+
		"placeholder objects where the real services write theirs and publish the done events; the coordinator is the real one. "+
		"A closed loop keeps N videos in flight (a VideoCreate as the API publishes it, users of the %s bundle) until the count is "+
		"ready; a fresh stack per run. Ready = the coordinator's notify job seen on a core NATS subscription (published after the "+
		"run is ready and the video promoted). Overhead = create→ready − Σ busy time (Work) of the audio, render and cdn stubs. "+
		"Pickup = bus.QueueWait (JetStream store time → the worker starts the job). events/s = EVENTS messages the coordinator's "+
		"durable acknowledged between the first create and the last ready, divided by that window; videos/s likewise; "+
		"events/video counts until every thumbnail and notification was handled. SQL/event: statements the coordinator ran "+
		"in the window (gorm callbacks, dev shapes) per event; the prod coordinator is another process. CPU ms/event: CPU time "+
		"used in the window per event handled: in prod of the coordinator's and nats-server's processes (/proc/PID/stat), in "+
		"the dev shapes of the whole process (coordinator, NATS, stubs and harness: getrusage).\n", h.o.workerConcurrency, bundle)
	return b.String()
}
