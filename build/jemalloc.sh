# Sourced by the launchers (./llm-embedder, bench/run): run .NET under jemalloc when it is installed.
#
# A training step allocates and frees activations of megabytes to gigabytes. glibc's malloc serves each with a fresh
# mmap and unmaps it on free, so every step faults its memory in again: on a 2-core AMD EPYC a bge-small fp32 step
# took 26.5 s under glibc and 10.3 s under jemalloc with decay off (BENCHMARKS.md, "Allocator and the real step").
# With jemalloc's default decay the step was as slow as under glibc, so decay is off: freed pages stay for reuse.
# LLM_EMBEDDER_NO_JEMALLOC=1 turns it off; a MALLOC_CONF already set is kept.
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2

# Installs Debian's libjemalloc2 when it is missing and we may (root, apt); called once, by the launcher's first build.
# Without it everything still works, only training is slower.
jemalloc_install_if_missing() {
  [ -f "$jemalloc" ] || [ -n "${LLM_EMBEDDER_NO_JEMALLOC:-}" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "llm-embedder: installing jemalloc (apt), which makes training about 2.6x faster here..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 >/dev/null 2>&1; } \
      || echo "llm-embedder: could not install jemalloc; running with glibc's malloc (slower training)" >&2
  else
    echo "llm-embedder: jemalloc is not installed (apt-get install libjemalloc2); training runs slower without it" >&2
  fi
}

if [ -f "$jemalloc" ] && [ -z "${LLM_EMBEDDER_NO_JEMALLOC:-}" ]; then
  case ":${LD_PRELOAD:-}:" in
    *":$jemalloc:"*) ;;
    *) export LD_PRELOAD="$jemalloc${LD_PRELOAD:+:$LD_PRELOAD}" ;;
  esac
  export MALLOC_CONF="${MALLOC_CONF:-dirty_decay_ms:-1,muzzy_decay_ms:-1}"
fi
