using System.Collections.Concurrent;
using System.Diagnostics;
using LlmEmbedder.Inference;
using Prometheus;

namespace LlmEmbedder.Server;

/// <summary>
/// What /metrics exposes, in Prometheus' text format: requests by route and status, embedding latency, batch sizes
/// (texts and padded tokens per forward pass), calls waiting, tokens embedded and their rate over the last
/// <see cref="RateWindow"/>. Each server has its own registry, so several servers in one process do not mix.
/// </summary>
internal sealed class ServerMetrics
{
    public static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(10);

    private readonly Counter requests;
    private readonly Histogram latency;
    private readonly Histogram batchTexts;
    private readonly Histogram batchTokens;
    private readonly Gauge waiting;
    private readonly Counter tokens;
    private readonly Gauge tokensPerSecond;
    private readonly Gauge ready;
    private readonly ConcurrentQueue<(long Timestamp, int Tokens)> recentTokens = new();

    public ServerMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        requests = factory.CreateCounter("llm_embedder_requests_total", "HTTP requests answered, by route and status code", ["route", "status"]);
        latency = factory.CreateHistogram("llm_embedder_request_duration_seconds", "Time from receiving an embeddings request to answering it",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        batchTexts = factory.CreateHistogram("llm_embedder_batch_size", "Texts per forward pass",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 10) });
        batchTokens = factory.CreateHistogram("llm_embedder_batch_padded_tokens", "Padded tokens (texts x longest) per forward pass",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(16, 2, 12) });
        waiting = factory.CreateGauge("llm_embedder_queue_depth", "Embedding calls waiting for the model");
        tokens = factory.CreateCounter("llm_embedder_tokens_total", "Tokens embedded (special tokens and instructions included)");
        tokensPerSecond = factory.CreateGauge("llm_embedder_tokens_per_second", $"Tokens embedded per second over the last {RateWindow.TotalSeconds:F0} s");
        ready = factory.CreateGauge("llm_embedder_model_ready", "1 once the model is loaded");
        Registry.AddBeforeCollectCallback(UpdateRate);
    }

    public CollectorRegistry Registry { get; }

    public Func<int>? QueueDepth { get; set; }

    public void Request(string route, int status) => requests.WithLabels(route, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();

    public void Latency(TimeSpan elapsed) => latency.Observe(elapsed.TotalSeconds);

    public void ModelReady() => ready.Set(1);

    public void Batch(BatchStatistics batch)
    {
        batchTexts.Observe(batch.Texts);
        batchTokens.Observe(batch.PaddedTokens);
        tokens.Inc(batch.Tokens);
        recentTokens.Enqueue((Stopwatch.GetTimestamp(), batch.Tokens));
    }

    private void UpdateRate()
    {
        var now = Stopwatch.GetTimestamp();
        while (recentTokens.TryPeek(out var oldest) && Stopwatch.GetElapsedTime(oldest.Timestamp, now) > RateWindow) recentTokens.TryDequeue(out _);
        tokensPerSecond.Set(recentTokens.Sum(t => (double)t.Tokens) / RateWindow.TotalSeconds);
        waiting.Set(QueueDepth?.Invoke() ?? 0);
    }
}
