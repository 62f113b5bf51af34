package devstack

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/telemetry"
	"github.com/backbeat/backbeat/services/api"
	"github.com/backbeat/backbeat/services/audio"
	"github.com/backbeat/backbeat/services/cdn"
	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
	coordinator "github.com/backbeat/backbeat/services/render-coordinator"
	"github.com/backbeat/backbeat/services/thumbnail"
)

// startServices wires each service exactly as its own main does, each with
// its own health server, and the API and edge on the main address.
func (s *Stack) startServices(ctx context.Context) error {
	// Bind the main address first: its real port goes into the edge URLs.
	apiTel := telemetry.New("api", s.logger("api"))
	if err := apiTel.Listen(s.Opts.HTTPAddr); err != nil {
		return err
	}
	s.BaseURL = "http://" + apiTel.Addr()
	s.Health["api"] = s.BaseURL

	// render-coordinator
	tel, err := s.telemetryFor("render-coordinator")
	if err != nil {
		return err
	}
	tel.AddCheck("database", s.Store.Ping)
	cc, err := s.connFor(ctx, bus.ServiceCoordinator)
	if err != nil {
		return err
	}
	s.Coordinator, err = coordinator.New(coordinator.Config{
		Bundles: s.Opts.Bundles, StallTimeout: s.Opts.StallTimeout, EdgeBaseURL: s.BaseURL,
	}, coordinator.Deps{Name: "dev", Store: s.Store, Pub: cc.pub, Runs: cc.runs, Blob: s.Blob, Alerts: s.alerts,
		Log: s.logger("render-coordinator"), Topo: s.Topo, Metrics: bus.NewMetrics(tel.Registry)})
	if err != nil {
		return err
	}
	s.spawn("render-coordinator", func(ctx context.Context) error { return s.Coordinator.Run(ctx, cc.js) })

	// audio
	if tel, err = s.telemetryFor("audio"); err != nil {
		return err
	}
	ac, err := s.connFor(ctx, bus.ServiceAudio)
	if err != nil {
		return err
	}
	au, err := audio.New(audio.Config{WorkDir: filepath.Join(s.Opts.Dir, "tmp")}, s.deps(ac, "audio", tel, "dev"))
	if err != nil {
		return fmt.Errorf("audio: %w", err)
	}
	s.spawn("audio", func(ctx context.Context) error { return au.Run(ctx, ac.js) })

	// gpu-renderer, one per pool
	for _, pool := range s.Opts.Pools {
		if err := s.StartRenderer(pool); err != nil {
			return err
		}
	}

	// thumbnail
	if tel, err = s.telemetryFor("thumbnail"); err != nil {
		return err
	}
	tc, err := s.connFor(ctx, bus.ServiceThumbnail)
	if err != nil {
		return err
	}
	th, err := thumbnail.New(thumbnail.Config{TempDir: filepath.Join(s.Opts.Dir, "tmp")}, s.deps(tc, "thumbnail", tel, "dev"))
	if err != nil {
		return fmt.Errorf("thumbnail: %w", err)
	}
	s.spawn("thumbnail", func(ctx context.Context) error { return th.Run(ctx, tc.js) })

	// cdn: purge worker here, edge on the main address
	if tel, err = s.telemetryFor("cdn"); err != nil {
		return err
	}
	dc, err := s.connFor(ctx, bus.ServiceCDN)
	if err != nil {
		return err
	}
	purges, err := bus.KV(ctx, dc.js, bus.BucketPurges)
	if err != nil {
		return err
	}
	edge, err := cdn.New(cdn.Config{Edge: cdn.EdgeConfig{CacheDir: filepath.Join(s.Opts.Dir, "edge-cache")},
		PublicBaseURL: s.BaseURL, Purges: purges}, s.deps(dc, "cdn", tel, "dev"))
	if err != nil {
		return fmt.Errorf("cdn: %w", err)
	}
	s.spawn("cdn", func(ctx context.Context) error { return edge.Run(ctx, dc.js) })

	// api + edge on the main address
	pc, err := s.connFor(ctx, bus.ServiceAPI)
	if err != nil {
		return err
	}
	if _, err := api.New(api.Config{OwnersMayRecover: true, AdminKey: s.AdminKey, Pools: s.Opts.Pools}, api.Deps{Store: s.Store, Blob: s.Blob, Pub: pc.pub, JS: pc.js, Log: s.logger("api"), Telemetry: apiTel}); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	for _, p := range cdn.PublicPrefixes {
		apiTel.Mux.Handle("/"+p, edge.Edge())
	}
	s.spawn("api", apiTel.Serve)
	return nil
}

// StartRenderer (re)starts the renderer of a pool, applying Options.Renderer.
func (s *Stack) StartRenderer(pool string) error {
	name := "gpu-renderer-" + pool
	tel, err := s.telemetryFor(name)
	if err != nil {
		return err
	}
	c, err := s.connFor(s.ctx, bus.ServiceRenderer)
	if err != nil {
		return err
	}
	cfg := renderer.Config{Pool: pool, TempDir: filepath.Join(s.Opts.Dir, "tmp")}
	if s.Opts.Renderer != nil {
		s.Opts.Renderer(pool, &cfg)
	}
	r, err := renderer.New(cfg, s.deps(c, "gpu-renderer", tel, "dev-"+pool))
	if err != nil {
		return fmt.Errorf("renderer %s: %w", pool, err)
	}
	s.spawn(name, func(ctx context.Context) error { return r.Run(ctx, c.js) })
	return nil
}

// deps are the dependencies of a worker service on its own connection, as
// boot.Process.Deps gives them to the service's main.
func (s *Stack) deps(c *conn, service string, tel *telemetry.Server, name string) bus.Deps {
	return bus.Deps{Blob: s.Blob, Pub: c.pub, Runs: c.runs, Topo: s.Topo, Log: s.logger(service),
		Metrics: bus.NewMetrics(tel.Registry), Name: name}
}

// StopRenderer stops a pool's renderer (its health server stays up).
func (s *Stack) StopRenderer(pool string) { s.StopService("gpu-renderer-" + pool) }
