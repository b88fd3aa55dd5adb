package daemon

import (
	"context"
	"errors"
	"sync"

	"github.com/sqlwarden/sqlwarden/pkg/k8s"
)

// setupPods starts the pod watcher when kubernetes.enabled: pods on this
// node annotated sqlwarden.io/intercept: "true" have their pod cgroup
// enrolled in the redirect as soon as the kubelet creates it, and identity
// reads pod labels and sqlwarden.io/* annotations for attribution from its
// cache. Call it after setupRedirect; it does not wait for the API server.
func (d *Daemon) setupPods(ctx context.Context) error {
	kc := d.cfg.Kubernetes
	if !kc.Enabled {
		return nil
	}
	if d.redirector == nil {
		return errors.New("setup pod watcher: kubernetes.enabled needs redirect.enabled")
	}
	client, err := k8s.NewClient(kc.Kubeconfig)
	if err != nil {
		return err
	}
	node, err := k8s.NodeName(kc.NodeName)
	if err != nil {
		return err
	}
	w, err := k8s.New(k8s.Options{
		Client: client, NodeName: node, Enroller: d.redirector,
		CgroupDriver: kc.CgroupDriver, CgroupPrefix: kc.CgroupPrefix,
		Log: d.log.With("component", "pods"),
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(wctx); err != nil {
			d.log.Error("pod watcher", "err", err)
		}
	}()
	d.closers = append(d.closers, func() error { cancel(); wg.Wait(); return nil })
	if d.resolver != nil {
		d.resolver.SetPodMetadata(w)
	}
	return nil
}
