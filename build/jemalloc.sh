# Sourced by the launchers (./llm-embedder, bench/run): run .NET under jemalloc when it is installed.
#
# A training step allocates and frees activations of megabytes to gigabytes. glibc's malloc serves each with a fresh
# mmap and unmaps it on free, so every step faults its memory in again. On a 2-core AMD EPYC a bge-small fp32 step took
# 26.5 s under glibc and 10.3 s under jemalloc with decay off; with jemalloc's default decay it took 27.3 s, so decay
# is off: freed pages stay for reuse (BENCHMARKS.md, "Allocator").
# LLM_EMBEDDER_NO_JEMALLOC=1 turns it off; a MALLOC_CONF already set is kept.
jemalloc=$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2 2>/dev/null | head -n 1 || true)

# Installs Debian's libjemalloc2 when it is missing and we may (root, apt): called by the launcher's build, and tried
# once per checkout (the marker is in .build/). Without it everything works, only training is slower.
jemalloc_install_if_missing() {
  local marker="$1"
  if [ -n "$jemalloc" ] || [ -n "${LLM_EMBEDDER_NO_JEMALLOC:-}" ] || [ -f "$marker" ]; then return 0; fi
  touch "$marker"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "llm-embedder: installing jemalloc (apt-get install libjemalloc2): training runs about 2.6x faster with it here" >&2
    DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -qq libjemalloc2 >/dev/null 2>&1 \
      || { timeout 180 apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -qq libjemalloc2 >/dev/null 2>&1; } \
      || echo "llm-embedder: could not install jemalloc; running with glibc's malloc (slower training)" >&2
    jemalloc=$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2 2>/dev/null | head -n 1 || true)
  else
    echo "llm-embedder: jemalloc is not installed (apt-get install libjemalloc2); training runs slower without it" >&2
  fi
}

if [ -n "$jemalloc" ] && [ -z "${LLM_EMBEDDER_NO_JEMALLOC:-}" ]; then
  case ":${LD_PRELOAD:-}:" in
    *":$jemalloc:"*) ;;
    *) export LD_PRELOAD="$jemalloc${LD_PRELOAD:+:$LD_PRELOAD}" ;;
  esac
  export MALLOC_CONF="${MALLOC_CONF:-dirty_decay_ms:-1,muzzy_decay_ms:-1}"
fi
