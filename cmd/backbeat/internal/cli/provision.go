package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/backbeat/backbeat/pkg/bus"
)

// Provision creates or updates Backbeat's JetStream topology — streams,
// durable consumers and KV buckets — and prints what it did to each:
// `backbeat provision [--pools gpu,cpu] [--replicas 3]`. It is the only
// writer of the topology: services merely check it at start-up, and their
// NATS users may not change it. Run it with the admin user (in Kubernetes,
// the backbeat-provision Job) once per install, after adding a render pool
// and after an upgrade; running it again changes nothing.
func Provision(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "provision", "[--pools gpu,cpu] [--replicas N]")
	var nf natsFlags
	nf.register(fs)
	pools := fs.String("pools", "", "render pools to create consumers for (default $BACKBEAT_POOLS or gpu,cpu)")
	replicas := fs.Int("replicas", 0, "replicas of streams and buckets (default $BACKBEAT_REPLICAS or 1; 3 in a cluster)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("unexpected arguments %q", pos)
	}
	poolList := strings.Split(firstNonEmpty(*pools, env.Getenv("BACKBEAT_POOLS"), "gpu,cpu"), ",")
	for i, p := range poolList {
		poolList[i] = strings.TrimSpace(p)
		if poolList[i] == "" || strings.ContainsAny(poolList[i], ".*> ") {
			return usageError("--pools: %q is not a pool name", p)
		}
	}
	n := *replicas
	if n == 0 {
		if v := env.Getenv("BACKBEAT_REPLICAS"); v != "" {
			if n, err = strconv.Atoi(v); err != nil {
				return usageError("BACKBEAT_REPLICAS=%q: not an integer", v)
			}
		} else {
			n = 1
		}
	}
	if n != 1 && n != 3 && n != 5 {
		return usageError("--replicas: %d (JetStream replicates 1, 3 or 5 ways)", n)
	}
	nc, js, subj, err := nf.connect(env)
	if err != nil {
		return err
	}
	defer nc.Close()
	topo := bus.DefaultTopology(subj.Prefix, poolList)
	topo.Replicas = n
	changes, err := topo.Provision(ctx, js)
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	for _, c := range changes {
		fmt.Fprintf(tw, "%s\t%s\n", c.Action, c.Item)
	}
	_ = tw.Flush()
	if err != nil {
		return fmt.Errorf("%w (is this the NATS admin user?)", err)
	}
	return nil
}
