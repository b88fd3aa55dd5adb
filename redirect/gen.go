package redirect

// Rebuild with `go generate ./redirect/` (clang and libbpf-dev from scripts/install-deps.sh build).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type config -type enrollment -type origin -type tuple bpf ../bpf/redirect.c
