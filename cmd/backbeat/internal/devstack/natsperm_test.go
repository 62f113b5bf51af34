package devstack

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/testenv"
	"github.com/backbeat/backbeat/services/api"
)

// userOf maps a service (bus.Service*) to its NATS user.
var userOf = map[string]string{
	bus.ServiceCoordinator: "coordinator", bus.ServiceAPI: "api", bus.ServiceAudio: "audio",
	bus.ServiceRenderer: "renderer", bus.ServiceCDN: "cdn", bus.ServiceThumbnail: "thumbnail",
}

// probeConn is a connection as one user that records the permission
// violations the server reports (asynchronously, as -ERR).
type probeConn struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	mu      sync.Mutex
	refused map[string]bool // "publish <subject>" / "subscribe <subject>"
}

var violation = regexp.MustCompile(`Permissions Violation for (Publish|Subscription) to "([^"]+)"`)

func dial(t *testing.T, s *testenv.ShippedNATS, user string) *probeConn {
	t.Helper()
	p := &probeConn{refused: map[string]bool{}}
	opts := append(bus.DialOptions(s.URL, s.Creds(user)), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if m := violation.FindStringSubmatch(err.Error()); m != nil {
			op := map[string]string{"Publish": "publish", "Subscription": "subscribe"}[m[1]]
			p.mu.Lock()
			p.refused[op+" "+m[2]] = true
			p.mu.Unlock()
		}
	}))
	var err error
	p.nc, err = nats.Connect(s.URL, opts...)
	require.NoError(t, err, "user %s connects with its password", user)
	p.js, err = jetstream.New(p.nc)
	require.NoError(t, err)
	t.Cleanup(p.nc.Close)
	return p
}

// wasRefused waits briefly for the server's verdict on op.
func (p *probeConn) wasRefused(op string) bool {
	_ = p.nc.Flush()
	deadline := time.Now().Add(time.Second)
	for {
		p.mu.Lock()
		r := p.refused[op]
		p.mu.Unlock()
		if r || time.Now().After(deadline) {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// grant is what a user may do, the specification accounts.conf must meet.
type grant struct {
	events   []string // event kinds it publishes
	jobs     bool     // publishes jobs
	progress bool     // publishes render progress
	kvWrite  []string // buckets it writes
	pulls    []string // durables on JOBS, or "STREAM/durable"
	watches  []string // buckets it watches
	bells    bool     // hears the doorbells of its JOBS durables (a worker over several)
	history  bool     // reads a video's EVENTS history and the JOBS consumers (the admin endpoints)
}

var grants = map[string]grant{
	"coordinator": {events: []string{bus.KindVideoStatus, bus.KindStepFailed, bus.KindNotifyDone}, jobs: true,
		kvWrite: []string{bus.BucketRuns},
		pulls:   []string{bus.StreamEvents + "/" + bus.ConsumerCoordinator, bus.StreamAdvisories + "/" + bus.ConsumerExhausted, bus.StepNotify}},
	// The api re-publishes histories for operators (replay): every kind but the coordinator's video.status.
	"api": {events: slices.DeleteFunc(slices.Clone(allKinds), func(k string) bool { return k == bus.KindVideoStatus }),
		history: true},
	"audio": {events: []string{bus.KindAudioDone, bus.KindStepFailed}, pulls: []string{bus.StepAudio}, watches: []string{bus.BucketRuns}},
	"renderer": {events: []string{bus.KindRenderDone, bus.KindStepFailed}, progress: true, watches: []string{bus.BucketRuns},
		pulls: renderDurables(), bells: true},
	"cdn": {events: []string{bus.KindCDNDone, bus.KindStepFailed}, kvWrite: []string{bus.BucketPurges},
		pulls: []string{bus.StepCDN}, watches: []string{bus.BucketPurges}},
	"thumbnail": {events: []string{bus.KindThumbnailDone, bus.KindStepFailed}, pulls: []string{bus.StepThumbnail},
		watches: []string{bus.BucketRuns}},
}

func renderDurables() []string {
	var out []string
	for _, pool := range []string{"gpu", "cpu"} {
		for _, prio := range bus.Priorities {
			out = append(out, bus.RenderConsumer(pool, prio))
		}
	}
	return out
}

var allKinds = []string{bus.KindVideoCreate, bus.KindVideoCancel, bus.KindVideoRecover, bus.KindAudioDone,
	bus.KindRenderDone, bus.KindCDNDone, bus.KindThumbnailDone, bus.KindNotifyDone, bus.KindStepFailed, bus.KindVideoStatus, bus.KindAdminAction}

func streamOf(durable string) (string, string) {
	if s, d, ok := strings.Cut(durable, "/"); ok {
		return s, d
	}
	return bus.StreamJobs, durable
}

// TestShippedNATSAccounts runs the shipped nats.conf and accounts.conf in a
// real nats-server and proves, for every service user: before provisioning
// it is told exactly what is missing; `backbeat provision` (admin) creates
// the topology and a second run changes nothing; the user does its job (its
// own publishes, pulls, acks, KV reads and watches); and it is refused every
// other service's subjects, every stream and consumer change, and every
// other service's consumer and inbox. Then a video renders end to end with
// every service connected as its own user.
func TestShippedNATSAccounts(t *testing.T) {
	ns := testenv.StartShippedNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topo := bus.DefaultTopology(bus.DefaultPrefix, []string{"gpu", "cpu"})

	// Before provisioning, a service names what is missing and changes nothing.
	audio := dial(t, ns, "audio")
	_, err := topo.Check(ctx, audio.js, bus.ServiceAudio)
	var miss *bus.MissingError
	require.ErrorAs(t, err, &miss, "a service refuses to start on an unprovisioned server")
	require.Contains(t, err.Error(), "consumer JOBS/audio")
	require.Contains(t, err.Error(), "stream EVENTS")
	require.Contains(t, err.Error(), "backbeat provision")
	require.NotContains(t, err.Error(), ns.Passwords["audio"])

	// Provisioning as admin (what `backbeat provision` runs; its own test is
	// in cli) creates everything; a second run changes nothing.
	admin := dial(t, ns, "admin")
	for i, want := range []string{"created", "unchanged"} {
		changes, err := topo.Provision(ctx, admin.js)
		require.NoError(t, err, "provision %d", i+1)
		require.Len(t, changes, len(topo.Items()))
		for _, c := range changes {
			require.Equal(t, want, c.Action, "provision %d: %s", i+1, c.Item)
		}
	}
	var matrix strings.Builder
	matrix.WriteString(permDocHead)
	for _, svc := range []string{bus.ServiceCoordinator, bus.ServiceAPI, bus.ServiceAudio, bus.ServiceRenderer, bus.ServiceCDN, bus.ServiceThumbnail} {
		user := userOf[svc]
		p := dial(t, ns, user)
		_, err := topo.Check(ctx, p.js, svc)
		require.NoError(t, err, "%s (user %s) finds what it needs after provisioning", svc, user)
		allowed, refused := probeUser(ctx, t, ns, admin, user)
		writeMatrix(&matrix, svc, user, allowed, refused)
	}
	checkDoc(t, filepath.Join(testenv.RepoRoot(t), "docs", "nats-permissions.md"), matrix.String())
	// The probes leave events, jobs and progress behind: start clean.
	for _, name := range []string{bus.StreamEvents, bus.StreamJobs, bus.StreamProgress} {
		st, err := admin.js.Stream(ctx, name)
		require.NoError(t, err)
		require.NoError(t, st.Purge(ctx))
	}

	// Every service as its own user renders a video end to end.
	users := map[string]bus.Credentials{"admin": ns.Creds("admin")}
	for svc, user := range userOf {
		users[svc] = ns.Creds(user)
	}
	e := setup(t, func(o *Options) { o.NATSURL, o.Users = ns.URL, users })
	vid := e.vid("perm")
	e.submit(vid, 1.0, 3.0, "square")
	v := e.waitStatus(vid, "ready")
	e.wait(vid, time.Minute, "thumbnail", func(v api.VideoView) bool { return v.SquareThumbnailURL != "" })
	require.NotEmpty(t, v.VideoURL)
	logs := e.logs.String()
	require.NotContains(t, logs, "Permissions Violation", "no service was refused anything it does")
	for _, u := range testenv.NATSUsers {
		require.NotContains(t, logs, ns.Passwords[u], "no password is logged")
	}
}

// probeUser runs the allowed operations of a user for real, then tries the
// forbidden ones and asserts the server refused each. It returns both lists.
func probeUser(ctx context.Context, t *testing.T, ns *testenv.ShippedNATS, admin *probeConn, user string) (allowed, refused []string) {
	t.Helper()
	g := grants[user]
	p := dial(t, ns, user)
	subj := bus.Subjects{Prefix: bus.DefaultPrefix}
	vid := "probe-" + user

	// Allowed, done for real.
	for _, k := range g.events {
		_, err := p.js.Publish(ctx, subj.Event(vid, k), []byte("probe"))
		require.NoError(t, err, "%s publishes %s", user, k)
		allowed = append(allowed, "publish "+subj.EventsOfKind(k))
	}
	if g.jobs {
		_, err := p.js.Publish(ctx, subj.AudioJob(vid), []byte("probe"))
		require.NoError(t, err, "%s publishes jobs", user)
		allowed = append(allowed, "publish "+bus.DefaultPrefix+".jobs.>")
	}
	if g.progress {
		_, err := p.js.Publish(ctx, subj.Progress(vid), []byte("probe"))
		require.NoError(t, err)
		allowed = append(allowed, "publish "+subj.Progress("*"))
	}
	for _, b := range g.kvWrite {
		kv, err := p.js.KeyValue(ctx, b)
		require.NoError(t, err)
		_, err = kv.Put(ctx, vid, []byte("probe"))
		require.NoError(t, err, "%s writes KV %s", user, b)
		allowed = append(allowed, "write KV "+b)
	}
	for _, d := range g.pulls {
		stream, durable := streamOf(d)
		if stream == bus.StreamJobs {
			// A job for this durable, from the admin, then pulled, heart-beat
			// and acked; a worker over several durables hears its doorbell.
			cons, err := admin.js.Consumer(ctx, stream, durable)
			require.NoError(t, err)
			filter := cons.CachedInfo().Config.FilterSubject
			var bell *nats.Subscription
			if g.bells {
				b, ok := subj.Bell(filter)
				require.True(t, ok)
				bell, err = p.nc.SubscribeSync(b)
				require.NoError(t, err)
				require.NoError(t, p.nc.Flush())
				allowed = append(allowed, "subscribe "+b)
			}
			_, err = admin.js.Publish(ctx, strings.TrimSuffix(filter, "*")+vid, []byte("probe"))
			require.NoError(t, err)
			if bell != nil {
				m, err := bell.NextMsg(5 * time.Second)
				require.NoError(t, err, "%s hears the doorbell of %s", user, d)
				require.Empty(t, m.Data, "a doorbell carries the job's headers, not the job")
				require.NoError(t, bell.Unsubscribe())
			}
		}
		cons, err := p.js.Consumer(ctx, stream, durable)
		require.NoError(t, err, "%s reads its consumer %s", user, d)
		if stream == bus.StreamJobs {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
			require.NoError(t, err)
			var got int
			for m := range batch.Messages() {
				require.NoError(t, m.InProgress(), "%s heart-beats %s", user, d)
				require.NoError(t, m.DoubleAck(ctx), "%s acks %s", user, d)
				got++
			}
			require.NoError(t, batch.Error())
			require.Equal(t, 1, got, "%s pulls its job from %s", user, d)
		}
		allowed = append(allowed, "pull+ack "+stream+"/"+durable)
	}
	runs, err := p.js.KeyValue(ctx, bus.BucketRuns)
	require.NoError(t, err, "%s opens the runs KV", user)
	if _, err := runs.Get(ctx, vid+"-unset"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("%s reads the runs KV: %v", user, err)
	}
	allowed = append(allowed, "read KV runs")
	if user == "coordinator" {
		// What it does with a job behind a max-deliveries advisory: read it, then remove it.
		ack, err := admin.js.Publish(ctx, subj.CDNJob(vid), []byte("exhausted"))
		require.NoError(t, err)
		jobs, err := p.js.Stream(ctx, bus.StreamJobs)
		require.NoError(t, err)
		m, err := jobs.GetMsg(ctx, ack.Sequence)
		require.NoError(t, err, "coordinator reads a job by sequence")
		require.Equal(t, "exhausted", string(m.Data))
		require.NoError(t, jobs.DeleteMsg(ctx, ack.Sequence), "coordinator removes an exhausted job")
		allowed = append(allowed, "read and delete a message of JOBS")
	}
	if g.history {
		// What the admin endpoints do: read a video's history (an ordered
		// consumer, removed after) and the JOBS consumers' state.
		_, err := p.js.Publish(ctx, subj.Event(vid, bus.KindVideoCreate), []byte("history"))
		require.NoError(t, err)
		msgs, err := bus.ReadHistory(ctx, p.js, subj.Event(vid, "")+">")
		require.NoError(t, err, "%s reads a video's history", user)
		require.NotEmpty(t, msgs)
		allowed = append(allowed, "read a video's EVENTS history (ordered consumer)")
		cons, err := p.js.Consumer(ctx, bus.StreamJobs, bus.StepAudio)
		require.NoError(t, err, "%s reads a JOBS consumer", user)
		require.Equal(t, bus.StepAudio, cons.CachedInfo().Name)
		_, err = p.js.Stream(ctx, bus.StreamJobs)
		require.NoError(t, err, "%s reads the JOBS stream's info", user)
		allowed = append(allowed, "read the JOBS stream's and consumers' info (the dashboard's pools page)")
	}
	if user == "api" || user == "coordinator" {
		// What the api's status and the coordinator's stall watchdog do.
		last, _, err := bus.NewProgressReader(p.js, subj).Last(ctx, vid)
		require.NoError(t, err, "%s reads a video's last progress", user)
		require.Nil(t, last)
		allowed = append(allowed, "read PROGRESS")
	}
	for _, b := range g.watches {
		kv, err := p.js.KeyValue(ctx, b)
		require.NoError(t, err)
		w, err := kv.Watch(ctx, vid)
		require.NoError(t, err, "%s watches KV %s", user, b)
		select {
		case <-w.Updates(): // the initial nil marks the end of the history
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: watch on %s delivered nothing", user, b)
		}
		require.NoError(t, w.Stop())
		allowed = append(allowed, "watch KV "+b)
	}
	_ = p.nc.Flush()
	p.mu.Lock()
	require.Empty(t, p.refused, "%s was refused something it does: %v", user, p.refused)
	p.mu.Unlock()

	// Refused: every other subject, change and consumer.
	var pubs []string
	for _, k := range allKinds {
		if !slices.Contains(g.events, k) {
			pubs = append(pubs, subj.Event(vid, k))
		}
	}
	if !g.jobs {
		pubs = append(pubs, subj.AudioJob(vid), subj.RenderJob("gpu", bus.PrioHigh, vid), subj.NotifyJob(vid))
	}
	if !g.progress {
		pubs = append(pubs, subj.Progress(vid))
	}
	for _, b := range []string{bus.BucketRuns, bus.BucketPurges} {
		if !slices.Contains(g.kvWrite, b) {
			pubs = append(pubs, "$KV."+b+"."+vid)
		}
	}
	for _, st := range []string{bus.StreamEvents, bus.StreamJobs, bus.StreamAdvisories, bus.StreamProgress, "KV_runs", "KV_purges"} {
		for _, op := range []string{"CREATE", "UPDATE", "DELETE", "PURGE"} {
			pubs = append(pubs, "$JS.API.STREAM."+op+"."+st)
		}
		if user != "coordinator" || st != bus.StreamJobs {
			pubs = append(pubs, "$JS.API.STREAM.MSG.DELETE."+st)
		}
	}
	topo := bus.DefaultTopology(bus.DefaultPrefix, []string{"gpu", "cpu"})
	for _, it := range topo.Items() {
		if it.Kind != bus.KindConsumer {
			continue
		}
		pubs = append(pubs, "$JS.API.CONSUMER.CREATE."+it.Stream+"."+it.Name, "$JS.API.CONSUMER.DELETE."+it.Stream+"."+it.Name,
			"$JS.API.CONSUMER.DURABLE.CREATE."+it.Stream+"."+it.Name)
		own := slices.Contains(g.pulls, it.Name) || slices.Contains(g.pulls, it.Stream+"/"+it.Name)
		if !own {
			pubs = append(pubs, "$JS.API.CONSUMER.MSG.NEXT."+it.Stream+"."+it.Name, "$JS.ACK."+it.Stream+"."+it.Name+".1.1.1.1.1.1.1")
		}
	}
	for _, s := range pubs {
		require.NoError(t, p.nc.Publish(s, []byte("probe")))
	}
	var subs []string
	for _, u := range testenv.NATSUsers {
		if u != user {
			subs = append(subs, bus.InboxPrefix(u)+".>")
		}
	}
	subs = append(subs, "_INBOX.>", "backbeat.>", "$KV.>")
	for _, s := range subs {
		sub, err := p.nc.SubscribeSync(s)
		require.NoError(t, err)
		defer func() { _ = sub.Unsubscribe() }()
	}
	for _, s := range pubs {
		require.True(t, p.wasRefused("publish "+s), "%s may not publish %s", user, s)
		refused = append(refused, "publish "+s)
	}
	for _, s := range subs {
		require.True(t, p.wasRefused("subscribe "+s), "%s may not subscribe to %s", user, s)
		refused = append(refused, "subscribe "+s)
	}
	sort.Strings(refused)
	return allowed, refused
}

// updateDocs rewrites docs/nats-permissions.md from what the server did.
var updateDocs = flag.Bool("update-docs", false, "rewrite docs/nats-permissions.md from the probes")

const permDocHead = `# NATS permissions, as the server enforces them

Generated by ` + "`TestShippedNATSAccounts`" + ` (cmd/backbeat/internal/devstack/natsperm_test.go),
which runs a real nats-server on the shipped ` + "`deployments/nats/nats.conf`" + ` and
` + "`accounts.conf`" + `, does each allowed operation as the user and tries each refused one;
the test fails when this page and the server disagree (` + "`go test -run TestShippedNATSAccounts -update-docs`" + `
rewrites it). Every user also connects, reads ` + "`$JS.API.INFO`" + ` and the streams, buckets and
consumers it checks at start-up, and receives replies on its own ` + "`_INBOX_<user>`" + `. The ` + "`admin`" + `
user (` + "`backbeat provision`" + `, replay, dlq) may do everything in the account.
`

// writeMatrix renders one user's operations, refused ones grouped.
func writeMatrix(b *strings.Builder, svc, user string, allowed, refused []string) {
	fmt.Fprintf(b, "\n## %s (user `%s`)\n\nAllowed, done for real:\n\n", svc, user)
	for _, a := range allowed {
		fmt.Fprintf(b, "- %s\n", a)
	}
	groups := map[string][]string{}
	var order []string
	for _, r := range refused {
		verb, subject, _ := strings.Cut(r, " ")
		g := verb
		switch {
		case strings.HasPrefix(subject, "$JS.API.STREAM."):
			g = "change or purge a stream"
		case strings.HasPrefix(subject, "$JS.API.CONSUMER.MSG.NEXT."), strings.HasPrefix(subject, "$JS.ACK."):
			g = "pull or ack another service's consumer"
		case strings.HasPrefix(subject, "$JS.API.CONSUMER."):
			g = "create, update or delete a durable consumer"
		case verb == "publish":
			g = "publish"
		case verb == "subscribe":
			g = "subscribe to"
		}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], "`"+subject+"`")
	}
	sort.Strings(order)
	fmt.Fprintf(b, "\nRefused by the server (%d operations):\n\n", len(refused))
	for _, g := range order {
		fmt.Fprintf(b, "- %s (%d): %s\n", g, len(groups[g]), strings.Join(groups[g], ", "))
	}
}

// checkDoc compares a generated page with the file, or rewrites it.
func checkDoc(t *testing.T, path, want string) {
	t.Helper()
	if *updateDocs {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update-docs to create it")
	require.Equal(t, want, string(got), "%s is out of date: rerun with -update-docs", path)
}
