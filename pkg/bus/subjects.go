// Package bus is Backbeat's JetStream layer: the topology as code, subjects,
// publishing with deterministic message ids, the consume runner that maps
// handler errors onto acks, and the runs KV that lets workers abandon work for
// a run that is no longer current.
package bus

import (
	"fmt"
	"strings"
)

// Event kinds: the last tokens of an EVENTS subject.
const (
	KindVideoCreate   = "video.create"
	KindVideoCancel   = "video.cancel"
	KindVideoRecover  = "video.recover"
	KindAudioDone     = "audio.done"
	KindRenderDone    = "render.done"
	KindCDNDone       = "cdn.done"
	KindThumbnailDone = "thumbnail.done"
	KindNotifyDone    = "notify.done"
	KindStepFailed    = "step.failed"
	KindVideoStatus   = "video.status"
	// KindAdminAction records an operator's action in the video's history
	// (the api publishes it; nothing consumes it).
	KindAdminAction = "admin.action"
)

// Steps name the workers; they appear in subjects, consumer names, message ids
// and the steps timeline.
const (
	StepAudio     = "audio"
	StepRender    = "render"
	StepCDN       = "cdn"
	StepThumbnail = "thumbnail"
	StepNotify    = "notify"
)

// Priorities of render jobs, drained in this order.
const (
	PrioHigh   = "high"
	PrioNormal = "normal"
	PrioLow    = "low"
)

// Priorities lists the render priorities from first to last drained.
var Priorities = []string{PrioHigh, PrioNormal, PrioLow}

// DefaultPrefix starts every subject unless configured otherwise.
const DefaultPrefix = "backbeat"

// Subjects builds subject names under one prefix, so that two deployments can
// share a NATS account without seeing each other's traffic.
type Subjects struct {
	Prefix string
}

func (s Subjects) p() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Event is <p>.events.<vid>.<kind>.
func (s Subjects) Event(videoID, kind string) string {
	return s.p() + ".events." + videoID + "." + kind
}

// Events matches every event of every video.
func (s Subjects) Events() string { return s.p() + ".events.>" }

// EventsOfKind matches one kind of event for every video.
func (s Subjects) EventsOfKind(kind string) string { return s.p() + ".events.*." + kind }

// Progress is <p>.progress.<vid>.
func (s Subjects) Progress(videoID string) string { return s.p() + ".progress." + videoID }

// AudioJob is <p>.jobs.audio.<vid>.
func (s Subjects) AudioJob(videoID string) string { return s.p() + ".jobs.audio." + videoID }

// RenderJob is <p>.jobs.render.<pool>.<prio>.<vid>.
func (s Subjects) RenderJob(pool, prio, videoID string) string {
	return s.p() + ".jobs.render." + pool + "." + prio + "." + videoID
}

// CDNJob is <p>.jobs.cdn.<vid>.
func (s Subjects) CDNJob(videoID string) string { return s.p() + ".jobs.cdn." + videoID }

// ThumbnailJob is <p>.jobs.thumbnail.<vid>.
func (s Subjects) ThumbnailJob(videoID string) string { return s.p() + ".jobs.thumbnail." + videoID }

// NotifyJob is <p>.jobs.notify.<vid>.
func (s Subjects) NotifyJob(videoID string) string { return s.p() + ".jobs.notify." + videoID }

// Bells matches every doorbell: JOBS republishes the headers of each job
// it stores on <p>.bell.<rest>, for the job <p>.jobs.<rest> (Topology).
func (s Subjects) Bells() string { return s.p() + ".bell.>" }

// Bell is the doorbell subject of a JOBS subject or filter
// (<p>.jobs.render.gpu.high.* rings <p>.bell.render.gpu.high.*), and false
// for a subject outside JOBS. A Run over several consumers waits on their
// bells instead of polling (Worker.Conn).
func (s Subjects) Bell(jobSubject string) (string, bool) {
	rest, ok := strings.CutPrefix(jobSubject, s.p()+".jobs.")
	if !ok || rest == "" {
		return "", false
	}
	return s.p() + ".bell." + rest, true
}

// VideoIDOf extracts the video id from any Backbeat subject (events, jobs,
// progress), or "" when the subject has none. The caller still validates it.
func (s Subjects) VideoIDOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, s.p()+".")
	if !ok {
		return ""
	}
	t := strings.Split(rest, ".")
	switch {
	case len(t) >= 3 && t[0] == "events":
		return t[1]
	case len(t) == 2 && t[0] == "progress":
		return t[1]
	case len(t) == 3 && t[0] == "jobs":
		return t[2]
	case len(t) == 5 && t[0] == "jobs" && t[1] == "render":
		return t[4]
	}
	return ""
}

// JobStep returns the step of a JOBS subject (audio, render, …), or "".
func (s Subjects) JobStep(subject string) string {
	rest, ok := strings.CutPrefix(subject, s.p()+".jobs.")
	if !ok {
		return ""
	}
	step, _, _ := strings.Cut(rest, ".")
	return step
}

// RenderConsumer names the durable consumer of one pool and priority.
func RenderConsumer(pool, prio string) string { return "render-" + pool + "-" + prio }

// MsgID is the deterministic Nats-Msg-Id of a publish: the same run, step,
// attempt and kind always give the same id, so a redelivered handler that
// publishes again is deduplicated by the stream.
func MsgID(runID, step string, attempt int32, kind string) string {
	return fmt.Sprintf("%s:%s:%d:%s", runID, step, attempt, kind)
}
