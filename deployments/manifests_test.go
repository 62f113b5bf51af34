package deployments

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/nats-io/nats-server/v2/server"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// rendered is `kubectl kustomize deployments/`, each document decoded
// strictly into its real type.
type rendered struct {
	deployments  []appsv1.Deployment
	statefulSets []appsv1.StatefulSet
	pdbs         []policyv1.PodDisruptionBudget
	secrets      []corev1.Secret
	configMaps   []corev1.ConfigMap
	services     []corev1.Service
	scaled       []kedav1alpha1.ScaledObject
	jobs         []batchv1.Job
}

func render(t *testing.T) rendered {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), ".")
	if err != nil {
		t.Fatalf("kustomize build deployments/: %v", err)
	}
	var out rendered
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		var target any
		switch r.GetKind() {
		case "Deployment":
			target = appendNew(&out.deployments)
		case "StatefulSet":
			target = appendNew(&out.statefulSets)
		case "PodDisruptionBudget":
			target = appendNew(&out.pdbs)
		case "Secret":
			target = appendNew(&out.secrets)
		case "ConfigMap":
			target = appendNew(&out.configMaps)
		case "Service":
			target = appendNew(&out.services)
		case "ScaledObject":
			target = appendNew(&out.scaled)
		case "Job":
			target = appendNew(&out.jobs)
		case "Namespace":
			target = &corev1.Namespace{}
		default:
			t.Errorf("%s: a kind this test does not know; add its type", r.CurId())
			continue
		}
		// Strict: a misspelt or misplaced field is an error, as the API
		// server's strict field validation would make it.
		if err := yaml.UnmarshalStrict(doc, target); err != nil {
			t.Errorf("%s does not decode strictly: %v", r.CurId(), err)
		}
	}
	return out
}

// appendNew appends a zero T to s and returns a pointer to it, for the
// decoder to fill.
func appendNew[T any](s *[]T) *T {
	*s = append(*s, *new(T))
	return &(*s)[len(*s)-1]
}

// TestManifestsDecodeStrictly: every document kustomize renders is a valid
// object of its real type, and the set is what the README promises.
func TestManifestsDecodeStrictly(t *testing.T) {
	r := render(t)
	var names []string
	for _, d := range r.deployments {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	want := []string{"api", "audio", "cdn", "gpu-renderer-cpu", "gpu-renderer-gpu", "render-coordinator", "thumbnail"}
	if !slices.Equal(names, want) {
		t.Errorf("deployments %v, want %v", names, want)
	}
	if len(r.statefulSets) != 1 || r.statefulSets[0].Name != "nats" || *r.statefulSets[0].Spec.Replicas != 3 {
		t.Errorf("want one 3-node nats StatefulSet, got %d", len(r.statefulSets))
	}
	for _, so := range r.scaled {
		if !slices.Contains(names, so.Spec.ScaleTargetRef.Name) {
			t.Errorf("ScaledObject %s scales %q, which is not a Deployment here", so.Name, so.Spec.ScaleTargetRef.Name)
		}
		for _, tr := range so.Spec.Triggers {
			if tr.Type == "nats-jetstream" && tr.Metadata["stream"] != "JOBS" {
				t.Errorf("ScaledObject %s: trigger on stream %q, want JOBS", so.Name, tr.Metadata["stream"])
			}
		}
	}
}

// TestManifestsFollowTheRules checks what a reviewer would, for every
// Deployment: probes, resources, a non-root read-only container, bounded
// scratch space, a PodDisruptionBudget; the GPU pool asks for a GPU and NVENC's driver capability.
func TestManifestsFollowTheRules(t *testing.T) {
	r := render(t)
	for _, d := range r.deployments {
		pod := d.Spec.Template.Spec
		sc := pod.SecurityContext
		podNonRoot := sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot
		for _, c := range pod.Containers {
			where := d.Name + "/" + c.Name
			if c.LivenessProbe == nil || c.ReadinessProbe == nil {
				t.Errorf("%s: needs liveness and readiness probes", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: needs cpu and memory requests and a memory limit", where)
			}
			csc := c.SecurityContext
			nonRoot := podNonRoot || (csc != nil && csc.RunAsNonRoot != nil && *csc.RunAsNonRoot)
			if !nonRoot {
				t.Errorf("%s: must run as non-root", where)
			}
			if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
				t.Errorf("%s: root filesystem must be read-only", where)
			}
			if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				t.Errorf("%s: must not allow privilege escalation", where)
			}
		}
		if !hasPDB(r.pdbs, d.Spec.Template.Labels) {
			t.Errorf("%s: no PodDisruptionBudget selects its pods: a node drain may take them all", d.Name)
		}
		for _, v := range pod.Volumes {
			if v.EmptyDir != nil && v.EmptyDir.SizeLimit == nil {
				t.Errorf("%s: emptyDir %s has no sizeLimit: a runaway render would fill the node", d.Name, v.Name)
			}
		}
		if d.Name == "gpu-renderer-gpu" {
			c := pod.Containers[0]
			if _, ok := c.Resources.Limits["nvidia.com/gpu"]; !ok {
				t.Errorf("%s: the GPU pool must ask for nvidia.com/gpu", d.Name)
			}
			caps := ""
			for _, e := range c.Env {
				if e.Name == "NVIDIA_DRIVER_CAPABILITIES" {
					caps = e.Value
				}
			}
			if !strings.Contains(caps, "video") && caps != "all" {
				t.Errorf("%s: NVIDIA_DRIVER_CAPABILITIES=%q lacks video: NVENC would not open", d.Name, caps)
			}
		}
	}
}

// TestMetricsAreNotPublic: /metrics is served on the operations port
// (BACKBEAT_OPS_ADDR), which Prometheus scrapes and no Service targets; the
// main port, which the api and cdn Services expose, answers it 404
// (pkg/telemetry).
func TestMetricsAreNotPublic(t *testing.T) {
	r := render(t)
	ops := ""
	for _, cm := range r.configMaps {
		if v, ok := cm.Data["BACKBEAT_OPS_ADDR"]; ok {
			ops = strings.TrimPrefix(v, ":")
		}
	}
	if ops == "" {
		t.Fatal("no ConfigMap sets BACKBEAT_OPS_ADDR: /metrics would be served on the public port")
	}
	for _, d := range r.deployments {
		if got := d.Spec.Template.Annotations["prometheus.io/port"]; got != ops {
			t.Errorf("%s: Prometheus scrapes port %q, /metrics is on %s", d.Name, got, ops)
		}
		for _, svc := range r.services {
			if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
				continue
			}
			for _, p := range svc.Spec.Ports {
				target := p.TargetPort.String()
				for _, c := range d.Spec.Template.Spec.Containers {
					for _, cp := range c.Ports {
						if (cp.Name == target || fmt.Sprint(cp.ContainerPort) == target) && fmt.Sprint(cp.ContainerPort) == ops {
							t.Errorf("Service %s exposes %s's operations port %s", svc.Name, d.Name, ops)
						}
					}
				}
			}
		}
	}
}

// selects reports whether a Service selector matches pod labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// hasPDB reports whether a PodDisruptionBudget selects pods with these labels.
func hasPDB(pdbs []policyv1.PodDisruptionBudget, labels map[string]string) bool {
	for _, p := range pdbs {
		if p.Spec.Selector == nil || len(p.Spec.Selector.MatchLabels) == 0 {
			continue
		}
		all := true
		for k, v := range p.Spec.Selector.MatchLabels {
			if labels[k] != v {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

// TestNATSImageIsTheTestedVersion: the cluster runs the nats-server the
// tests embed (pkg/go.mod).
func TestNATSImageIsTheTestedVersion(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join("..", "pkg", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\d+\.\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("pkg/go.mod names no nats-server version")
	}
	tested := string(m[1])
	for _, s := range render(t).statefulSets {
		for _, c := range s.Spec.Template.Spec.Containers {
			if name, tag, ok := strings.Cut(c.Image, ":"); ok && name == "nats" {
				if !strings.HasPrefix(tag, tested+"-") && tag != tested {
					t.Errorf("%s runs nats:%s; the tests run nats-server %s", s.Name, tag, tested)
				}
			}
		}
	}
}

// TestSecretsAreNotApplied: `kubectl apply -k` ships no Secret, so it can
// never overwrite real credentials with placeholders; secrets.example.yaml
// holds every Secret and key the workloads reference, with placeholder values
// only.
func TestSecretsAreNotApplied(t *testing.T) {
	r := render(t)
	for _, s := range r.secrets {
		t.Errorf("kustomize renders Secret %s: apply -k would overwrite the real one", s.Name)
	}
	raw, err := os.ReadFile("secrets.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	example := map[string]map[string]bool{}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if !strings.Contains(doc, "kind: Secret") {
			continue
		}
		var s corev1.Secret
		if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
			t.Fatalf("secrets.example.yaml: %v", err)
		}
		if len(s.Data) > 0 {
			t.Errorf("secret %s ships base64 data; use placeholder stringData", s.Name)
		}
		example[s.Name] = map[string]bool{}
		for k, v := range s.StringData {
			example[s.Name][k] = true
			if v != "" && !strings.Contains(strings.ToLower(v), "change-me") {
				t.Errorf("secrets.example.yaml: %s/%s is not a placeholder", s.Name, k)
			}
		}
	}
	var pods []corev1.PodSpec
	for _, d := range r.deployments {
		pods = append(pods, d.Spec.Template.Spec)
	}
	for _, st := range r.statefulSets {
		pods = append(pods, st.Spec.Template.Spec)
	}
	for _, pod := range pods {
		for _, c := range pod.Containers {
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil && example[ef.SecretRef.Name] == nil {
					t.Errorf("container %s reads Secret %s, which secrets.example.yaml lacks", c.Name, ef.SecretRef.Name)
				}
			}
			for _, e := range c.Env {
				if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && !example[ref.SecretKeyRef.Name][ref.SecretKeyRef.Key] {
					t.Errorf("container %s reads %s/%s, which secrets.example.yaml lacks", c.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
				}
			}
		}
	}
}

// TestNATSConfigParses: nats.conf and accounts.conf load in nats-server's
// own parser, with JetStream and the 3-node cluster, and every service has
// its own user in account BACKBEAT.
func TestNATSConfigParses(t *testing.T) {
	for _, v := range []string{"POD_NAME", "NATS_PASSWORD_COORDINATOR", "NATS_PASSWORD_API", "NATS_PASSWORD_AUDIO",
		"NATS_PASSWORD_RENDERER", "NATS_PASSWORD_CDN", "NATS_PASSWORD_THUMBNAIL", "NATS_PASSWORD_ADMIN", "NATS_PASSWORD_SYS"} {
		t.Setenv(v, strings.ToLower(v))
	}
	opts, err := server.ProcessConfigFile(filepath.Join("nats", "nats.conf"))
	if err != nil {
		t.Fatalf("nats-server refuses nats/nats.conf: %v", err)
	}
	if !opts.JetStream {
		t.Error("JetStream is not enabled")
	}
	if opts.Cluster.Name != "backbeat" || len(opts.Routes) != 3 {
		t.Errorf("cluster %q with %d routes, want backbeat with 3", opts.Cluster.Name, len(opts.Routes))
	}
	users := map[string]string{}
	for _, u := range opts.Users {
		acc := ""
		if u.Account != nil {
			acc = u.Account.Name
		}
		users[u.Username] = acc
	}
	for _, svc := range []string{"coordinator", "api", "audio", "renderer", "cdn", "thumbnail"} {
		if users[svc] != "BACKBEAT" {
			t.Errorf("service user %s: account %q, want BACKBEAT", svc, users[svc])
		}
	}
}

// natsUserOf is the NATS user each workload connects as (accounts.conf).
var natsUserOf = map[string]string{
	"api": "api", "audio": "audio", "cdn": "cdn", "gpu-renderer-cpu": "renderer", "gpu-renderer-gpu": "renderer",
	"render-coordinator": "coordinator", "thumbnail": "thumbnail", "backbeat-provision": "admin",
}

// TestEachWorkloadIsItsOwnNATSUser: every Deployment connects as the user of
// its service, with the password from that user's key of Secret backbeat-nats
// and never inside a URL; the provision Job is the only admin, runs
// `backbeat provision`, and follows the same container rules.
func TestEachWorkloadIsItsOwnNATSUser(t *testing.T) {
	r := render(t)
	type workload struct {
		name string
		pod  corev1.PodSpec
	}
	var all []workload
	for _, d := range r.deployments {
		all = append(all, workload{d.Name, d.Spec.Template.Spec})
	}
	if len(r.jobs) != 1 || r.jobs[0].Name != "backbeat-provision" {
		t.Fatalf("want the one Job backbeat-provision, got %d jobs", len(r.jobs))
	}
	job := r.jobs[0]
	all = append(all, workload{job.Name, job.Spec.Template.Spec})
	for _, w := range all {
		want, ok := natsUserOf[w.name]
		if !ok {
			t.Errorf("%s: no NATS user known for this workload", w.name)
			continue
		}
		c := w.pod.Containers[0]
		var user, pwKey string
		for _, e := range c.Env {
			switch e.Name {
			case "BACKBEAT_NATS_USER":
				user = e.Value
			case "BACKBEAT_NATS_PASSWORD":
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "backbeat-nats" {
					pwKey = e.ValueFrom.SecretKeyRef.Key
				}
			case "BACKBEAT_NATS_URL":
				if strings.Contains(e.Value, "@") {
					t.Errorf("%s: BACKBEAT_NATS_URL carries credentials; use BACKBEAT_NATS_USER/PASSWORD", w.name)
				}
			}
		}
		if user != want {
			t.Errorf("%s: BACKBEAT_NATS_USER=%q, want %q", w.name, user, want)
		}
		if pwKey != "NATS_PASSWORD_"+strings.ToUpper(want) {
			t.Errorf("%s: BACKBEAT_NATS_PASSWORD from backbeat-nats key %q, want NATS_PASSWORD_%s", w.name, pwKey, strings.ToUpper(want))
		}
	}
	c := job.Spec.Template.Spec.Containers[0]
	if name, _, _ := strings.Cut(c.Image, ":"); name != "backbeat/backbeat" || !slices.Equal(c.Args, []string{"provision"}) {
		t.Errorf("backbeat-provision runs %s %v, want backbeat/backbeat provision", c.Image, c.Args)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Error("backbeat-provision: read-only root filesystem and no privilege escalation, like every container")
	}
	if sc := job.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("backbeat-provision must run as non-root")
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Error("backbeat-provision needs a memory limit")
	}
	var url string
	for _, cm := range r.configMaps {
		if v, ok := cm.Data["BACKBEAT_NATS_URL"]; ok {
			url = v
		}
	}
	if url != "nats://nats:4222" {
		t.Errorf("backbeat-config BACKBEAT_NATS_URL=%q, want the nats client Service, nats://nats:4222", url)
	}
}

// TestEachWorkloadHasItsFile: every service (../services/<s>/cmd/<s>) has its
// manifest, services/<s>.yaml, and nats its nats/nats.yaml; each file defines
// that workload (the renderer one Deployment per pool, gpu-renderer-<pool>)
// and is a resource of kustomization.yaml, so `kubectl apply -k` deploys it.
func TestEachWorkloadHasItsFile(t *testing.T) {
	files := map[string]string{"nats/nats.yaml": "StatefulSet/nats"}
	dirs, err := filepath.Glob(filepath.Join(repoRoot, "services", "*", "cmd"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no service mains under ../services: %v", err)
	}
	for _, d := range dirs {
		svc := filepath.Base(filepath.Dir(d))
		if _, err := os.Stat(filepath.Join(d, svc)); err != nil {
			continue // tools only (no main named after the service)
		}
		files["services/"+svc+".yaml"] = "Deployment/" + svc
	}
	files["services/gpu-renderer.yaml"] = "Deployment/gpu-renderer-gpu"
	var kust struct {
		Resources []string `json:"resources"`
	}
	raw, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	for file, want := range files {
		if !slices.Contains(kust.Resources, file) {
			t.Errorf("%s is not a resource of kustomization.yaml", file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%s: %v", want, err)
			continue
		}
		var found bool
		for _, doc := range strings.Split(string(b), "\n---") {
			var obj struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if yaml.Unmarshal([]byte(doc), &obj) == nil && obj.Kind+"/"+obj.Metadata.Name == want {
				found = true
			}
		}
		if !found {
			t.Errorf("%s does not define %s", file, want)
		}
	}
}
