using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Bench;

/// <summary>
/// Load on `llm-embedder serve` (the built CLI, started as a child process on a free loopback port), from HttpClient
/// clients that each send one short Chinese question (samples/eval/queries.jsonl) per request and send the next as
/// soon as the answer arrives. Four modes, each for --duration seconds:
/// (1) 1 client, one request at a time; (2) --clients clients with dynamic batching (the server's defaults);
/// (3) the same clients with batching off (--batch_size 1); (4) overload: --overload_clients clients against a server
/// with --max_queue --overload_queue, retrying at once on 429: every refusal must be a 429 with Retry-After, none a
/// timeout, and afterwards a normal request and /health must succeed.
/// Prints a markdown table (with the server's processor time per answer, which a busy machine distorts less than
/// requests/s) and the acceptance checks; the exit code is 1 when a check fails.
/// Flags: --duration 60 --clients 32 --overload_clients 64 --overload_queue 4 --timeout 30 (seconds per request)
///        --model DIR (default: random weights of the bge-small-zh-v1.5 shape with the bert-base-chinese vocabulary)
///        --cli src/LlmEmbedder.Cli/bin/Release/net10.0/llm-embedder.dll --queries samples/eval/queries.jsonl
/// Run from the repository root.
/// </summary>
public static partial class ServeLoadBench
{
    public static void Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    private static async Task RunAsync(string[] args)
    {
        var duration = TimeSpan.FromSeconds(BenchArgs.Flag(args, "--duration", 60));
        int clients = BenchArgs.Flag(args, "--clients", 32), overloadClients = BenchArgs.Flag(args, "--overload_clients", 64);
        int overloadQueue = BenchArgs.Flag(args, "--overload_queue", 4);
        var requestTimeout = TimeSpan.FromSeconds(BenchArgs.Flag(args, "--timeout", 30));
        var cli = BenchArgs.Flag(args, "--cli", "src/LlmEmbedder.Cli/bin/Release/net10.0/llm-embedder.dll");
        var texts = File.ReadLines(BenchArgs.Flag(args, "--queries", "samples/eval/queries.jsonl"))
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("query").GetString()!).ToArray();
        if (!File.Exists(cli)) throw new FileNotFoundException($"{cli}: build the CLI first (dotnet build LlmEmbedder.slnx -c Release)");

        var scratch = Path.Combine(Path.GetTempPath(), $"llm-embedder-serve-bench-{Environment.ProcessId}");
        var model = BenchArgs.Flag(args, "--model", "");
        if (model.Length == 0)
        {
            model = Path.Combine(scratch, "bge-small-zh-shaped");
            RandomModelFolder.Create("tests/fixtures/bge-small-zh-v1.5/config.json", "tests/fixtures/bert-base-chinese", model, seed: 1);
        }
        Console.WriteLine($"serve-load: {BenchArgs.CpuModel()}, {Environment.ProcessorCount} cores, load average {BenchArgs.LoadAverage()}; " +
            $"model {model}; {texts.Length} texts of {texts.Min(t => t.Length)}-{texts.Max(t => t.Length)} characters; {duration.TotalSeconds:F0} s per mode");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue }) { Timeout = Timeout.InfiniteTimeSpan };
        var load = new LoadGenerator(http, texts, requestTimeout);
        var rows = new List<(string Mode, string Flags, int Clients, LoadResult Result)>();
        bool recovered;
        try
        {
            await using (var server = await ServerProcess.StartAsync(cli, model, [], http))
            {
                await load.WarmUp(server.Url, clients);
                rows.Add(("one request at a time", "defaults", 1, await load.Run(server, 1, duration)));
                rows.Add(("dynamic batching", "defaults", clients, await load.Run(server, clients, duration)));
            }
            await using (var server = await ServerProcess.StartAsync(cli, model, ["--batch_size", "1"], http))
            {
                await load.WarmUp(server.Url, clients);
                rows.Add(("batching off", "--batch_size 1", clients, await load.Run(server, clients, duration)));
            }
            var overloadFlags = $"--max_queue {overloadQueue}";
            await using (var server = await ServerProcess.StartAsync(cli, model, ["--max_queue", overloadQueue.ToString(CultureInfo.InvariantCulture)], http))
            {
                await load.WarmUp(server.Url, overloadQueue);
                rows.Add(("overload", overloadFlags, overloadClients, await load.Run(server, overloadClients, duration)));
                recovered = await Recovers(http, server.Url, texts[0]);
            }
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }

        Console.WriteLine();
        Console.WriteLine("| mode | server flags | clients | answered (200) | refused or failed | p50 ms | p90 ms | p99 ms | requests/s | texts per forward pass | server CPU ms per answer |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var (mode, flags, count, result) in rows)
            Console.WriteLine($"| {mode} | {flags} | {count} | {result.Answered} | {result.Failures} | {result.Percentile(50):F1} | {result.Percentile(90):F1} | " +
                $"{result.Percentile(99):F1} | {result.RequestsPerSecond:F1} | {result.TextsPerBatch:F1} | {result.ServerCpu.TotalMilliseconds / result.Answered:F1} |");
        Console.WriteLine();
        foreach (var (mode, _, _, result) in rows)
            foreach (var sample in result.Samples)
                Console.WriteLine($"{mode}: unexpected answer {sample}");

        var (single, batched, unbatched, overload) = (rows[0].Result, rows[1].Result, rows[2].Result, rows[3].Result);
        bool ok = true;
        void Check(bool passed, string what)
        {
            Console.WriteLine($"{(passed ? "ok  " : "FAIL")} {what}");
            ok &= passed;
        }
        Check(batched.ErrorCount == 0 && batched.Answered > 0, $"{clients} clients with dynamic batching for {duration.TotalSeconds:F0} s: {batched.ErrorCount} errors");
        double speedup = batched.RequestsPerSecond / single.RequestsPerSecond;
        Check(speedup >= 2, $"dynamic batching at {clients} clients: {speedup:F2}x the requests/s of one request at a time (at least 2x)");
        Console.WriteLine($"     batching off at {clients} clients: {unbatched.RequestsPerSecond / single.RequestsPerSecond:F2}x; " +
            $"dynamic batching / batching off: {batched.RequestsPerSecond / unbatched.RequestsPerSecond:F2}x; server CPU per answer, " +
            $"one at a time / dynamic batching: {single.ServerCpu / single.Answered / (batched.ServerCpu / batched.Answered):F2}x");
        int refused = overload.Statuses.GetValueOrDefault("429");
        Check(refused > 0 && overload.RefusedWithoutRetryAfter == 0 && overload.ErrorCount == refused,
            $"overload: {refused} answered 429 ({overload.RefusedWithoutRetryAfter} without Retry-After), " +
            $"{overload.Statuses.GetValueOrDefault(LoadResult.Timeout)} timeouts, {overload.ErrorCount - refused} other failures");
        Check(recovered, "after the overload: a normal request answered 200 and /health ok");
        Console.WriteLine($"load average at the end: {BenchArgs.LoadAverage()}");
        if (!ok) Environment.ExitCode = 1;
    }

    /// <summary>A request and a health check, right after the flood stopped.</summary>
    private static async Task<bool> Recovers(HttpClient http, string url, string text)
    {
        using var answer = await http.PostAsync(url + "/v1/embeddings", LoadGenerator.Body(text));
        using var health = await http.GetAsync(url + "/health");
        return answer.StatusCode == HttpStatusCode.OK && health.StatusCode == HttpStatusCode.OK;
    }

    /// <summary>Closed-loop clients: each sends its next text as soon as its previous answer (or refusal) arrives.</summary>
    private sealed class LoadGenerator(HttpClient http, string[] texts, TimeSpan requestTimeout)
    {
        public static StringContent Body(string text) =>
            new(JsonSerializer.Serialize(new Dictionary<string, string> { ["input"] = text, ["model"] = "bench" }), Encoding.UTF8, "application/json");

        /// <summary>First forward passes are slow (allocation, kernels): a few alone, then a few concurrent rounds.</summary>
        public async Task WarmUp(string url, int clients)
        {
            for (int i = 0; i < 5; i++) await Send(url, texts[i], new LoadResult());
            for (int round = 0; round < 3; round++)
                await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Send(url, texts[c % texts.Length], new LoadResult())));
        }

        public async Task<LoadResult> Run(ServerProcess server, int clients, TimeSpan duration)
        {
            var url = server.Url;
            var (batchesBefore, textsBefore) = await BatchCounters(url);
            var cpuBefore = server.CpuTime;
            var clock = Stopwatch.StartNew();
            var results = await Task.WhenAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
            {
                var result = new LoadResult();
                // Clients start at different texts so that concurrent requests differ.
                for (int i = client * 7; clock.Elapsed < duration; i++) await Send(url, texts[i % texts.Length], result);
                return result;
            })));
            var elapsed = clock.Elapsed;
            var serverCpu = server.CpuTime - cpuBefore;
            var (batchesAfter, textsAfter) = await BatchCounters(url);
            return LoadResult.Merge(results, elapsed, (textsAfter - textsBefore) / Math.Max(1, batchesAfter - batchesBefore), serverCpu);
        }

        private async Task Send(string url, string text, LoadResult result)
        {
            using var timeout = new CancellationTokenSource(requestTimeout);
            var clock = Stopwatch.StartNew();
            try
            {
                using var response = await http.PostAsync(url + "/v1/embeddings", Body(text), timeout.Token);
                var body = await response.Content.ReadAsByteArrayAsync(timeout.Token);
                var status = ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
                result.Add(status, clock.Elapsed, retryAfter: response.Headers.RetryAfter is not null);
                if (status is not ("200" or "429")) result.Sample($"{status} {Encoding.UTF8.GetString(body)}");
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                result.Add(LoadResult.Timeout, clock.Elapsed, retryAfter: false);
            }
            catch (HttpRequestException error)
            {
                result.Add($"connection: {error.HttpRequestError}", clock.Elapsed, retryAfter: false);
            }
        }

        /// <summary>Forward passes and texts embedded so far, from the server's Prometheus histogram of batch sizes.</summary>
        private async Task<(double Batches, double Texts)> BatchCounters(string url)
        {
            var metrics = await http.GetStringAsync(url + "/metrics");
            double Value(string name) => metrics.Split('\n').Where(l => l.StartsWith(name + " ", StringComparison.Ordinal))
                .Select(l => double.Parse(l[(name.Length + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault();
            return (Value("llm_embedder_batch_size_count"), Value("llm_embedder_batch_size_sum"));
        }
    }

    /// <summary>What the clients of one mode saw: answers by status, latencies of the 200s.</summary>
    private sealed class LoadResult
    {
        public const string Timeout = "timeout";

        private readonly List<double> latencies = [];

        public Dictionary<string, int> Statuses { get; } = [];

        public int RefusedWithoutRetryAfter { get; private set; }

        public TimeSpan Elapsed { get; private set; }

        public double TextsPerBatch { get; private set; }

        /// <summary>Processor time the server used (all its threads): on a busy machine a fairer measure of its work than wall time.</summary>
        public TimeSpan ServerCpu { get; private set; }

        public int Answered => Statuses.GetValueOrDefault("200");

        public int ErrorCount => Statuses.Where(s => s.Key != "200").Sum(s => s.Value);

        public double RequestsPerSecond => Answered / Elapsed.TotalSeconds;

        public string Failures => ErrorCount == 0 ? "0" : string.Join(", ", Statuses.Where(s => s.Key != "200").OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}"));

        /// <summary>The bodies of the first few unexpected answers (neither 200 nor 429), to say what went wrong.</summary>
        public List<string> Samples { get; } = [];

        public void Sample(string answer)
        {
            if (Samples.Count < 3) Samples.Add(answer);
        }

        public void Add(string status, TimeSpan latency, bool retryAfter)
        {
            Statuses[status] = Statuses.GetValueOrDefault(status) + 1;
            if (status == "200") latencies.Add(latency.TotalMilliseconds);
            if (status == "429" && !retryAfter) RefusedWithoutRetryAfter++;
        }

        /// <summary>Nearest-rank percentile of the answered requests' latency, in milliseconds.</summary>
        public double Percentile(double percent)
        {
            if (latencies.Count == 0) return double.NaN;
            latencies.Sort();
            return latencies[Math.Clamp((int)Math.Ceiling(percent / 100 * latencies.Count) - 1, 0, latencies.Count - 1)];
        }

        public static LoadResult Merge(IEnumerable<LoadResult> parts, TimeSpan elapsed, double textsPerBatch, TimeSpan serverCpu)
        {
            var merged = new LoadResult { Elapsed = elapsed, TextsPerBatch = textsPerBatch, ServerCpu = serverCpu };
            foreach (var part in parts)
            {
                merged.latencies.AddRange(part.latencies);
                foreach (var (status, count) in part.Statuses) merged.Statuses[status] = merged.Statuses.GetValueOrDefault(status) + count;
                merged.RefusedWithoutRetryAfter += part.RefusedWithoutRetryAfter;
                foreach (var sample in part.Samples) merged.Sample(sample);
            }
            return merged;
        }
    }

    /// <summary>`llm-embedder serve` on port 0 (Kestrel picks a free one; the server prints it), stopped with SIGTERM.</summary>
    private sealed partial class ServerProcess : IAsyncDisposable
    {
        private readonly Process process;
        private readonly StringBuilder stderr = new();

        private ServerProcess(Process process)
        {
            this.process = process;
            process.ErrorDataReceived += (_, line) =>
            {
                if (line.Data is null) return;
                lock (stderr) stderr.AppendLine(line.Data);
            };
            process.BeginErrorReadLine();
        }

        public string Url { get; private set; } = "";

        public TimeSpan CpuTime
        {
            get
            {
                process.Refresh();
                return process.TotalProcessorTime;
            }
        }

        public static async Task<ServerProcess> StartAsync(string cli, string model, string[] flags, HttpClient http)
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in (string[])[cli, "serve", "--model", model, "--urls", "http://127.0.0.1:0", .. flags]) start.ArgumentList.Add(arg);
            var server = new ServerProcess(Process.Start(start)!);
            try
            {
                var clock = Stopwatch.StartNew();
                while (server.Url.Length == 0 || !await server.Healthy(http))
                {
                    if (server.process.HasExited) throw new InvalidOperationException($"llm-embedder serve exited ({server.process.ExitCode}): {server.Stderr}");
                    if (clock.Elapsed > TimeSpan.FromMinutes(3)) throw new TimeoutException($"llm-embedder serve not healthy after 3 minutes: {server.Stderr}");
                    if (server.Url.Length == 0 && ListeningOn().Match(server.Stderr) is { Success: true } match) server.Url = match.Groups[1].Value;
                    await Task.Delay(100);
                }
                Console.Error.WriteLine($"serve {string.Join(' ', flags)} at {server.Url} ready after {clock.Elapsed.TotalSeconds:F1} s");
                return server;
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }

        private string Stderr
        {
            get
            {
                lock (stderr) return stderr.ToString();
            }
        }

        private async Task<bool> Healthy(HttpClient http)
        {
            if (Url.Length == 0) return false;
            using var response = await http.GetAsync(Url + "/health");
            return response.StatusCode == HttpStatusCode.OK;
        }

        public async ValueTask DisposeAsync()
        {
            if (!process.HasExited) _ = Kill(process.Id, Sigterm);
            using var stopped = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await process.WaitForExitAsync(stopped.Token);
                if (process.ExitCode != 0) Console.Error.WriteLine($"serve stopped with exit code {process.ExitCode}: {Stderr}");
                // The server logs each request it failed ("error: PATH: TYPE: MESSAGE"); say how many and show a few.
                var errors = Stderr.Split('\n').Where(l => l.StartsWith("llm-embedder: error:", StringComparison.Ordinal)).ToList();
                if (errors.Count > 0)
                    Console.WriteLine($"serve logged {errors.Count} failed requests, first: {string.Join(" | ", errors.Take(3))}");
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Console.Error.WriteLine("serve did not stop within 30 s of SIGTERM; killed");
            }
            process.Dispose();
        }

        private const int Sigterm = 15;

        [DllImport("libc", EntryPoint = "kill")]
        private static extern int Kill(int pid, int signal);

        [GeneratedRegex(@"listening on (http://[^\s,]+)")]
        private static partial Regex ListeningOn();
    }
}
