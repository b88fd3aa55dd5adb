package redirect

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteText prints the status as `sqlwarden status` shows it: the pins,
// the proxy and node addresses, the fail mode, the enrolled cgroups and the
// counters.
func (st *Status) WriteText(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	node := "none"
	if st.NodeAddress.IsValid() {
		node = st.NodeAddress.String()
	}
	fmt.Fprintf(w, "pins:\t%s\nproxy:\t%s\nnode address:\t%s\nfail mode:\t%s\n", st.PinDir, st.ProxyAddr, node, st.FailMode)
	if st.FailMode == "open" {
		fmt.Fprintf(w, "heartbeat age:\t%s\n", st.Heartbeat.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\nENROLLED CGROUP\tID\tPORTS\n")
	for _, e := range st.Enrolled {
		path := e.Path
		if path == "" {
			path = "(gone)"
		}
		fmt.Fprintf(w, "%s\t%d\t%v\n", path, e.CgroupID, e.Ports)
	}
	c := st.Counters
	fmt.Fprintf(w, "\nredirected\t%d\nskipped (excluded/port/proxy dest/fail-open)\t%d/%d/%d/%d\ndenied\t%d\nlookup misses\t%d\n",
		c.Redirected, c.SkippedExcluded, c.SkippedPort, c.SkippedProxyDest, c.SkippedFailOpen, c.Denied, c.LookupMisses)
	return w.Flush()
}
