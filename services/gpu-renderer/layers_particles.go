package renderer

import (
	"image"
	"image/color"
	"math"

	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// particles drift through their box. Particle i's start, speed and size come
// from a hash of (Seed, i); how far it has travelled at frame N comes from
// the time and the loudness summed up to N (a prefix sum computed once per
// render). Nothing carries over from frame to frame, so frame N is the same
// drawn alone or in sequence.
type particles struct {
	s     *Scene
	box   image.Rectangle
	cfg   template.ParticlesLayer
	color color.NRGBA
	seeds []particleSeed
	// loud[n] is the sum of loudness over video frames 0..n-1, in seconds.
	loud []float64
}

type particleSeed struct {
	u, v    float64 // start position in 0..1 (across, along the motion)
	speed   float64 // speed factor 0.5..1.5
	size    float64 // size factor 0.6..1.4
	wobble  float64 // phase of the sideways drift
	twinkle float64
}

func (s *Scene) newParticles(box image.Rectangle, c color.NRGBA, cfg *template.ParticlesLayer) *particles {
	p := &particles{s: s, box: box, cfg: *cfg, color: c, seeds: make([]particleSeed, cfg.Count)}
	for i := range p.seeds {
		h := splitmix(uint64(cfg.Seed)*0x9e3779b97f4a7c15 + uint64(i))
		next := func() float64 {
			h = splitmix(h)
			return float64(h>>11) / (1 << 53)
		}
		p.seeds[i] = particleSeed{u: next(), v: next(), speed: 0.5 + next(), size: 0.6 + 0.8*next(),
			wobble: next() * 2 * math.Pi, twinkle: next() * 2 * math.Pi}
	}
	p.loud = make([]float64, s.frames+1)
	for n := 0; n < s.frames; n++ {
		l := float64(s.an.Frames[s.analysisIndex(n)].Loudness)
		p.loud[n+1] = p.loud[n] + l/float64(s.fps)
	}
	return p
}

// splitmix is the SplitMix64 step: a fast, well-mixed hash of a counter.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (p *particles) draw(dst *image.RGBA, dmg *damage, n int) {
	b := p.box
	t := float64(n) / float64(p.s.fps)
	cum := p.loud[min(max(n, 0), len(p.loud)-1)]
	loud := float64(p.s.an.Frames[p.s.analysisIndex(n)].Loudness)
	// Distance in box units: steady drift plus a push from the music so far.
	travel := p.cfg.Speed * (t + 2*cum)
	short := float64(min(p.s.w, p.s.h))
	cx, cy := float64(b.Min.X+b.Max.X)/2, float64(b.Min.Y+b.Max.Y)/2
	R := float64(min(b.Dx(), b.Dy())) / 2
	for _, sd := range p.seeds {
		pos := frac(sd.v + sd.speed*travel) // 0..1 along the motion, wrapping
		fade := min(1, 5*min(pos, 1-pos))
		radius := p.cfg.Size * short * sd.size * (0.8 + 0.5*loud) / 2
		var x, y float64
		if p.cfg.Direction == "out" {
			ang := sd.u*2*math.Pi + 0.15*math.Sin(t*0.7+sd.wobble)
			dist := pos * (R - radius)
			x, y = cx+dist*math.Sin(ang), cy-dist*math.Cos(ang)
			radius *= 0.4 + 0.8*pos
			fade = min(1, 5*(1-pos))
		} else {
			drift := 0.03 * math.Sin(t*0.9+sd.wobble)
			x = float64(b.Min.X) + radius + frac(sd.u+drift)*(float64(b.Dx())-2*radius)
			y = float64(b.Max.Y) - radius - pos*(float64(b.Dy())-2*radius)
		}
		alpha := fade * (0.3 + 0.7*loud) * (0.75 + 0.25*math.Sin(t*3+sd.twinkle))
		fillRing(dst, dmg, b, x, y, 0, radius, p.color, alpha)
	}
}

func frac(v float64) float64 { return v - math.Floor(v) }
