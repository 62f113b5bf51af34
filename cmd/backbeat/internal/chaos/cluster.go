package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/natsconf"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/proc"
	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// natsNode is one nats-server of the three-node cluster.
type natsNode struct {
	*proc.Proc
	serverName string
	clientURL  string
}

// cluster is three nats-server processes run from the shipped
// deployments/nats/nats.conf (with its accounts.conf). The addresses are
// overridden by the command-line flags nats-server applies over the file
// (-a, -p, -m, --cluster, --routes, -P). The store directory cannot be: in
// nats-server 2.15 ConfigureOptions reads the file into the options -sd
// already set, and the file's jetstream.store_dir then fails with
// "Duplicate 'store_dir' configuration". So each node runs a copy of
// nats.conf that differs in that one line (natsconf.Node), next to a copy of
// accounts.conf. The monitoring port keeps the file's host (0.0.0.0): -m
// sets only the port.
type cluster struct {
	nodes []*natsNode
	// urls is the comma-separated list of every client URL.
	urls string
}

// newCluster prepares (does not start) three nodes named nats-0..2, the
// names the shipped config takes from $POD_NAME.
func newCluster(root, dir, natsServer string, passwords map[string]string) (*cluster, error) {
	ports, err := proc.FreePorts(9)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := 0; i < 3; i++ {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[6+i]))
	}
	env := natsconf.PasswordEnv(passwords)
	c := &cluster{}
	var urls []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("nats-%d", i)
		conf, err := natsconf.Node(root, dir, name, filepath.Join(dir, name), false)
		if err != nil {
			return nil, err
		}
		url := fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
		urls = append(urls, url)
		c.nodes = append(c.nodes, &natsNode{serverName: name, clientURL: url, Proc: &proc.Proc{
			Name: name,
			Argv: []string{natsServer, "-c", conf,
				"-a", "127.0.0.1", "-p", fmt.Sprint(ports[i]), "-m", fmt.Sprint(ports[3+i]),
				"--cluster", routes[i], "--routes", strings.Join(routes, ","),
				"-P", filepath.Join(dir, name+".pid")},
			Env: append([]string{"POD_NAME=" + name}, env...),
			Log: proc.LogPath(dir, name),
		}})
	}
	c.urls = strings.Join(urls, ",")
	return c, nil
}

// node returns the node called name (a server name), or nil.
func (c *cluster) node(name string) *natsNode {
	for _, n := range c.nodes {
		if n.serverName == name {
			return n
		}
	}
	return nil
}

// admin is a connection as the NATS admin user (everything in the account).
type admin struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func connectAdmin(urls, password string) (*admin, error) {
	nc, js, err := bus.Connect(urls, bus.Credentials{User: "admin", Password: password}, "chaos", zap.NewNop())
	if err != nil {
		return nil, fmt.Errorf("connect as admin: %w", err)
	}
	return &admin{nc: nc, js: js}, nil
}

// waitJetStream waits until the cluster has a JetStream meta leader (the
// account info answers).
func (a *admin) waitJetStream(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := a.js.AccountInfo(rctx)
		rcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jetstream not available within %s: %w", timeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// leader is the server name of the leader of a stream.
func (a *admin) leader(ctx context.Context, stream string) (string, error) {
	info, err := a.streamInfo(ctx, stream)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", fmt.Errorf("stream %s has no leader", stream)
	}
	return info.Cluster.Leader, nil
}

func (a *admin) streamInfo(ctx context.Context, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := a.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", stream, err)
	}
	return info, nil
}

// stepDown asks the leader of stream to hand over to preferred
// ($JS.API.STREAM.LEADER.STEPDOWN.<stream> with a placement; nats-server
// 2.15 honours placement.preferred, see getStepDownPreferredPlacement).
func (a *admin) stepDown(ctx context.Context, stream, preferred string) error {
	body, err := json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	if err != nil {
		return fmt.Errorf("encode stepdown: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := a.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, body)
	if err != nil {
		return fmt.Errorf("stepdown %s: %w", stream, err)
	}
	var resp struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("stepdown %s: decode %q: %w", stream, msg.Data, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("stepdown %s to %s: %s", stream, preferred, resp.Error.Description)
	}
	return nil
}

// colocate tries to put the leaders of EVENTS and JOBS on one node by asking
// JOBS to step down to the EVENTS leader. It returns both leaders as they are
// at the end, colocated or not.
func (a *admin) colocate(ctx context.Context) (events, jobs string, err error) {
	for try := 0; try < 5; try++ {
		if events, err = a.leader(ctx, bus.StreamEvents); err != nil {
			return "", "", err
		}
		if jobs, err = a.leader(ctx, bus.StreamJobs); err != nil {
			return "", "", err
		}
		if events == jobs {
			return events, jobs, nil
		}
		if err := a.stepDown(ctx, bus.StreamJobs, events); err != nil {
			return events, jobs, err
		}
		// A new leader is elected within a few hundred milliseconds.
		for i := 0; i < 20; i++ {
			time.Sleep(250 * time.Millisecond)
			if l, err := a.leader(ctx, bus.StreamJobs); err == nil && l != jobs {
				break
			}
		}
	}
	return events, jobs, nil
}

// allCurrent waits until every replica of each stream is current and online
// (a restarted node has caught up) and each has a leader.
func (a *admin) allCurrent(ctx context.Context, timeout time.Duration, streams ...string) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		last = ""
		for _, s := range streams {
			info, err := a.streamInfo(ctx, s)
			if err != nil {
				last = err.Error()
				break
			}
			if info.Cluster == nil || info.Cluster.Leader == "" {
				last = s + ": no leader"
				break
			}
			if len(info.Cluster.Replicas) != 2 {
				last = fmt.Sprintf("%s: %d followers", s, len(info.Cluster.Replicas))
				break
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Offline {
					last = fmt.Sprintf("%s: replica %s current=%v offline=%v", s, r.Name, r.Current, r.Offline)
				}
			}
			if last != "" {
				break
			}
		}
		if last == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("replicas not current within %s: %s", timeout, last)
}

// consumerBacklog is the pending and ack-pending count of one durable.
type consumerBacklog struct {
	Stream, Name              string
	NumPending, NumAckPending uint64
}

// backlog lists every durable consumer of streams with its pending counts,
// and the number of messages in JOBS.
func (a *admin) backlog(ctx context.Context, streams ...string) (jobsMsgs uint64, out []consumerBacklog, err error) {
	info, err := a.streamInfo(ctx, bus.StreamJobs)
	if err != nil {
		return 0, nil, err
	}
	jobsMsgs = info.State.Msgs
	for _, name := range streams {
		s, err := a.js.Stream(ctx, name)
		if err != nil {
			return 0, nil, fmt.Errorf("stream %s: %w", name, err)
		}
		l := s.ListConsumers(ctx)
		for ci := range l.Info() {
			if ci.Config.Durable == "" {
				continue
			}
			out = append(out, consumerBacklog{Stream: name, Name: ci.Name, NumPending: ci.NumPending, NumAckPending: uint64(ci.NumAckPending)})
		}
		if err := l.Err(); err != nil {
			return 0, nil, fmt.Errorf("list consumers of %s: %w", name, err)
		}
	}
	return jobsMsgs, out, nil
}

// jobSubjects lists the subjects of the messages JOBS still holds, with
// their counts.
func (a *admin) jobSubjects(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := a.js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		return "", fmt.Errorf("stream JOBS: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return "", fmt.Errorf("stream JOBS subjects: %w", err)
	}
	var out []string
	for subj, n := range info.State.Subjects {
		out = append(out, fmt.Sprintf("%s ×%d", subj, n))
	}
	return strings.Join(out, ", "), nil
}

// readyEvents counts the video.status events with status ready per video
// id in EVENTS, read from the start with an ordered consumer.
func (a *admin) readyEvents(ctx context.Context, prefix string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	subject := prefix + ".events.*." + bus.KindVideoStatus
	cons, err := a.js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", subject, err)
	}
	out := map[string]int{}
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", subject, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("metadata: %w", err)
			}
			var ev backbeatv1.VideoStatusChanged
			if err := bus.Decode(m.Data(), m.Headers().Get(bus.HeaderContentType), &ev); err != nil {
				return nil, fmt.Errorf("event %d: %w", md.Sequence.Stream, err)
			}
			if ev.Status == backbeatv1.VideoStatus_VIDEO_STATUS_READY {
				out[ev.VideoId]++
			}
			if md.NumPending == 0 {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("fetch %s: %w", subject, err)
		}
		if n == 0 {
			return out, nil
		}
	}
}
