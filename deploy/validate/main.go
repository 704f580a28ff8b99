// Command validate decodes Kubernetes manifests strictly against the
// Kubernetes API types (k8s.io/api): an unknown field, a wrong type or an
// unexpected kind fails, naming the document and the field. It reads
// multi-document YAML (helm template output, plain manifests) from the
// files given, or stdin.
//
//	helm template kvault deploy/helm/kvault | go run ./deploy/validate
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// kinds maps apiVersion/kind to a new typed object.
var kinds = map[string]func() any{
	"batch/v1/CronJob":                  func() any { return &batchv1.CronJob{} },
	"batch/v1/Job":                      func() any { return &batchv1.Job{} },
	"v1/ConfigMap":                      func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                         func() any { return &corev1.Secret{} },
	"v1/ServiceAccount":                 func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                        func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                func() any { return &appsv1.Deployment{} },
	"rbac.authorization.k8s.io/v1/Role": func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
}

// documents splits multi-document YAML on "---" lines, dropping empty and
// comment-only documents.
func documents(r io.Reader) ([][]byte, error) {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		meaningful := false
		for _, l := range strings.Split(cur.String(), "\n") {
			t := strings.TrimSpace(l)
			if t != "" && !strings.HasPrefix(t, "#") {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<20), 1<<24)
	for s.Scan() {
		if strings.TrimRight(s.Text(), " ") == "---" {
			flush()
			continue
		}
		cur.Write(s.Bytes())
		cur.WriteByte('\n')
	}
	flush()
	return docs, s.Err()
}

func check(name string, r io.Reader) int {
	docs, err := documents(r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	if len(docs) == 0 {
		fmt.Fprintf(os.Stderr, "%s: no manifests\n", name)
		return 1
	}
	failed := 0
	for i, d := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(d, &tm); err != nil {
			fmt.Fprintf(os.Stderr, "%s: document %d: %v\n", name, i+1, err)
			failed++
			continue
		}
		key := tm.APIVersion + "/" + tm.Kind
		mk, ok := kinds[key]
		if !ok {
			fmt.Fprintf(os.Stderr, "%s: document %d: unexpected kind %q\n", name, i+1, key)
			failed++
			continue
		}
		obj := mk()
		if err := yaml.UnmarshalStrict(d, obj); err != nil {
			fmt.Fprintf(os.Stderr, "%s: document %d (%s): %v\n", name, i+1, key, err)
			failed++
			continue
		}
		fmt.Printf("%s: %s ok\n", name, key)
	}
	return failed
}

func main() {
	failed := 0
	if len(os.Args) == 1 {
		failed += check("stdin", os.Stdin)
	}
	for _, f := range os.Args[1:] {
		fh, err := os.Open(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed++
			continue
		}
		failed += check(f, fh)
		fh.Close()
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "%d manifest(s) failed strict decoding\n", failed)
		os.Exit(1)
	}
}
