// Package renderer draws audio-reactive frames from a template (package
// template) and the audio analysis, converts them to YUV (internal/yuv),
// streams them into ffmpeg and serves render jobs from JetStream.
//
// The compositor draws a template's layers bottom to top: the static ones
// once per render into a base frame, the per-frame ones into the dirty
// spans of each frame. See docs/architecture.md, "Renderer layout", for
// which file holds what.
package renderer
