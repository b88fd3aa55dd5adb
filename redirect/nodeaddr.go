package redirect

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NodeInterface is the dummy interface that carries the node address.
const NodeInterface = "sqlwarden0"

// EnsureNodeAddress puts addr on the node so other network namespaces can
// reach the proxy: on a dummy interface "sqlwarden0" (created with netlink),
// or as a host route on lo when the kernel has no dummy driver. It is
// idempotent. cleanup removes what this call created.
func EnsureNodeAddress(addr netip.Addr) (cleanup func() error, err error) {
	if !addr.IsValid() {
		return nil, errors.New("ensure node address: invalid address")
	}
	addr = addr.Unmap()
	nl := nodeAddr(addr)

	dev, created, err := ensureDummy()
	if err != nil {
		lo, lerr := netlink.LinkByName("lo")
		if lerr != nil {
			return nil, fmt.Errorf("find lo: %w", lerr)
		}
		dev = lo
	}
	existed := hasAddr(dev, nl)
	if !existed {
		if err := netlink.AddrReplace(dev, nl); err != nil {
			if created {
				_ = netlink.LinkDel(dev)
			}
			return nil, fmt.Errorf("add %v to %s: %w", addr, dev.Attrs().Name, err)
		}
	}
	cleanup = func() error {
		if created {
			if err := netlink.LinkDel(dev); err != nil {
				return fmt.Errorf("delete %s: %w", NodeInterface, err)
			}
			return nil
		}
		if !existed {
			if err := netlink.AddrDel(dev, nl); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("remove %v from %s: %w", addr, dev.Attrs().Name, err)
			}
		}
		return nil
	}
	return cleanup, nil
}

func nodeAddr(addr netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(addr.BitLen(), addr.BitLen())}}
}

// ensureDummy finds or creates the sqlwarden0 dummy interface and brings it up.
func ensureDummy() (netlink.Link, bool, error) {
	if l, err := netlink.LinkByName(NodeInterface); err == nil {
		if err := netlink.LinkSetUp(l); err != nil {
			return nil, false, fmt.Errorf("set %s up: %w", NodeInterface, err)
		}
		return l, false, nil
	}
	d := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: NodeInterface}}
	if err := netlink.LinkAdd(d); err != nil {
		return nil, false, fmt.Errorf("create dummy %s: %w", NodeInterface, err)
	}
	l, err := netlink.LinkByName(NodeInterface)
	if err != nil {
		return nil, false, fmt.Errorf("find %s: %w", NodeInterface, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		_ = netlink.LinkDel(l)
		return nil, false, fmt.Errorf("set %s up: %w", NodeInterface, err)
	}
	return l, true, nil
}

func hasAddr(dev netlink.Link, want *netlink.Addr) bool {
	addrs, err := netlink.AddrList(dev, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IPNet.IP.Equal(want.IP) {
			return true
		}
	}
	return false
}

// removeNodeAddress deletes the sqlwarden0 interface and addr on lo.
func removeNodeAddress(addr netip.Addr) error {
	var errs []error
	if l, err := netlink.LinkByName(NodeInterface); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", NodeInterface, err))
		}
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		nl := nodeAddr(addr.Unmap())
		if hasAddr(lo, nl) {
			if err := netlink.AddrDel(lo, nl); err != nil {
				errs = append(errs, fmt.Errorf("remove %v from lo: %w", addr, err))
			}
		}
	}
	return errors.Join(errs...)
}
