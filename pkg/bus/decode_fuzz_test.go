package bus_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// decodeTypes are every message of backbeat.v1 (events and jobs), in a fixed
// order so a fuzz input's type index means the same type on every run.
func decodeTypes(f *testing.F) []protoreflect.MessageType {
	f.Helper()
	_ = backbeatv1.File_backbeat_v1_events_proto // link the package's types in
	var out []protoreflect.MessageType
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		if mt.Descriptor().ParentFile().Package() == "backbeat.v1" {
			out = append(out, mt)
		}
		return true
	})
	if len(out) < 17 {
		f.Fatalf("found %d backbeat.v1 message types, want at least 17", len(out))
	}
	// RangeMessages has no defined order.
	slices.SortFunc(out, func(a, b protoreflect.MessageType) int {
		return strings.Compare(string(a.Descriptor().FullName()), string(b.Descriptor().FullName()))
	})
	return out
}

// FuzzDecode feeds arbitrary bodies to Decode as each message type, binary
// and protojson. Properties: no panic; whatever decodes re-encodes and
// decodes to an equal message (so a worker and the message it republishes
// agree); a JSON body naming a field the type does not have is refused.
func FuzzDecode(f *testing.F) {
	types := decodeTypes(f)
	seeds := []proto.Message{
		&backbeatv1.VideoCreate{VideoId: "v1", UserId: "u1", AudioKey: "uploads/v1/audio.wav", StartSeconds: 1, EndSeconds: 31, Template: "bars", TemplateSettings: map[string]string{"color": "#fff"}, Title: "t", RequestId: "req"},
		&backbeatv1.RenderJob{VideoId: "v1", RunId: "r0123456789abcdef01234567", Attempt: 2, Encoding: &backbeatv1.Encoding{Crf: 20, Preset: "fast", Fps: 30}},
		&backbeatv1.StepFailed{VideoId: "v1", Step: "render", Reason: "boom", Permanent: true},
		&backbeatv1.CdnJob{VideoId: "v1", Paths: []string{"/videos/v1/r/video.mp4"}},
	}
	for _, m := range seeds {
		idx := uint8(indexOf(types, m.ProtoReflect().Descriptor().FullName()))
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(idx, false, b, "")
		j, err := protojson.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(idx, true, j, "videoId")
		f.Add(idx, true, j, "no_such_field")
	}
	f.Add(uint8(0), true, []byte(`{"videoId":"v","video_id":"w"}`), "x")
	f.Add(uint8(1), false, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, "")
	f.Fuzz(func(t *testing.T, typ uint8, json bool, data []byte, extra string) {
		mt := types[int(typ)%len(types)]
		ct := bus.ContentTypeProto
		if json {
			ct = bus.ContentTypeJSON + "; charset=utf-8"
		}
		m := mt.New().Interface()
		if err := bus.Decode(data, ct, m); err != nil {
			return
		}
		again := mt.New().Interface()
		if json {
			out, err := protojson.Marshal(m)
			if err != nil {
				t.Fatalf("decoded %s does not re-encode: %v", mt.Descriptor().FullName(), err)
			}
			if err := bus.Decode(out, ct, again); err != nil {
				t.Fatalf("re-encoded %s %s does not decode: %v", mt.Descriptor().FullName(), out, err)
			}
			// A field the type does not have is refused, whatever its value.
			fields := mt.Descriptor().Fields()
			if extra != "" && fields.ByJSONName(extra) == nil && fields.ByName(protoreflect.Name(extra)) == nil &&
				!strings.ContainsAny(extra, "\"\\\x00") && !strings.HasPrefix(extra, "[") && !strings.HasPrefix(extra, "@") {
				body := `{"` + extra + `":1}`
				if err := bus.Decode([]byte(body), ct, mt.New().Interface()); err == nil {
					t.Fatalf("%s accepted unknown field in %s", mt.Descriptor().FullName(), body)
				}
			}
		} else {
			out, err := proto.Marshal(m)
			if err != nil {
				t.Fatalf("decoded %s does not re-encode: %v", mt.Descriptor().FullName(), err)
			}
			if err := bus.Decode(out, ct, again); err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", mt.Descriptor().FullName(), err)
			}
		}
		if !proto.Equal(m, again) {
			t.Fatalf("%s changed on a round trip: %v != %v", mt.Descriptor().FullName(), m, again)
		}
	})
}

func indexOf(types []protoreflect.MessageType, name protoreflect.FullName) int {
	for i, mt := range types {
		if mt.Descriptor().FullName() == name {
			return i
		}
	}
	panic("no type " + name)
}
