using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Server;

/// <summary>
/// `llm-embedder serve --max_queue 2` (the built CLI, a real process on a free port) flooded by 32 clients that send
/// their next request as soon as the last one is answered: the requests that find the queue full are answered at once
/// with 429, Retry-After and an OpenAI error body, every other request is embedded, none hangs, and when the flood
/// stops the server answers normally. The model has random weights of the bge-small-zh-v1.5 shape, so that a forward
/// pass takes long enough for requests to pile up.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed partial class ServeQueueFullProcessTests : IDisposable
{
    private const int Clients = 32;
    private const int RequestsPerClient = 12;

    private readonly string dir = TestPaths.NewTempDir("serve-queue-full");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public async Task AFullQueueAnswers429WithRetryAfterAndTheServerRecovers()
    {
        var model = Path.Combine(dir, "bge-small-zh-shaped");
        RandomModelFolder.Create(TestPaths.Fixture("bge-small-zh-v1.5", "config.json"), TestPaths.ChineseVocabDir, model, seed: 1);
        var texts = File.ReadLines(Path.Combine(TestPaths.RepoRoot, "samples", "eval", "queries.jsonl"))
            .Select(line => JsonNode.Parse(line)!["query"]!.GetValue<string>()).ToArray();

        using var server = CliProcess.Start(["serve", "--model", model, "--urls", "http://127.0.0.1:0", "--max_queue", "2"], workingDirectory: dir);
        try
        {
            var url = ListeningOn().Match(server.WaitForStderr(s => ListeningOn().IsMatch(s), TimeSpan.FromMinutes(2))).Groups[1].Value;
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(1) };
            await WaitUntilHealthy(http, url, server);

            var answers = await Task.WhenAll(Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
            {
                var seen = new List<(HttpStatusCode Status, string? RetryAfter, string? ContentType, string Body)>();
                for (int i = 0; i < RequestsPerClient; i++)
                {
                    using var response = await http.PostAsync(url + "/v1/embeddings", Request(texts[(client * RequestsPerClient + i) % texts.Length]));
                    seen.Add((response.StatusCode, response.Headers.TryGetValues("Retry-After", out var values) ? string.Join(",", values) : null,
                        response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync()));
                }
                return seen;
            })));
            var all = answers.SelectMany(a => a).ToList();

            var other = all.Where(a => a.Status is not HttpStatusCode.OK and not HttpStatusCode.TooManyRequests).ToList();
            Assert.True(other.Count == 0, $"answers other than 200 and 429: {string.Join("; ", other.Select(o => $"{(int)o.Status} {o.Body}"))}");
            var refused = all.Where(a => a.Status == HttpStatusCode.TooManyRequests).ToList();
            Assert.True(refused.Count > 0, $"{all.Count} requests from {Clients} clients at --max_queue 2, none refused");
            Assert.True(refused.Count < all.Count, $"all {all.Count} requests refused");
            foreach (var (_, retryAfter, contentType, body) in refused)
            {
                Assert.True(int.TryParse(retryAfter, out var seconds) && seconds >= 1, $"Retry-After \"{retryAfter}\" is not a number of seconds");
                Assert.Equal("application/json", contentType);
                var error = JsonNode.Parse(body)!.AsObject();
                Assert.Equal(["error"], error.Select(p => p.Key));
                Assert.Equal(["message", "type", "param", "code"], error["error"]!.AsObject().Select(p => p.Key));
                Assert.Contains("queue is full", error["error"]!["message"]!.GetValue<string>());
                Assert.Equal("rate_limit_error", error["error"]!["type"]!.GetValue<string>());
                Assert.Equal("rate_limit_exceeded", error["error"]!["code"]!.GetValue<string>());
            }
            foreach (var (_, _, _, body) in all.Where(a => a.Status == HttpStatusCode.OK))
                Assert.Equal(512, JsonNode.Parse(body)!["data"]![0]!["embedding"]!.AsArray().Count);

            // The server's own count of 429s is the clients' count.
            var metrics = await http.GetStringAsync(url + "/metrics");
            Assert.Contains($"llm_embedder_requests_total{{route=\"/v1/embeddings\",status=\"429\"}} {refused.Count}\n", metrics);

            using var after = await http.PostAsync(url + "/v1/embeddings", Request("洪水过后，服务器还能正常回答吗？"));
            Assert.Equal(HttpStatusCode.OK, after.StatusCode);
            Assert.Equal(512, JsonNode.Parse(await after.Content.ReadAsStringAsync())!["data"]![0]!["embedding"]!.AsArray().Count);
            using var health = await http.GetAsync(url + "/health");
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            Assert.False(server.Process.HasExited);
        }
        finally
        {
            if (!server.Process.HasExited) server.Process.Kill(entireProcessTree: true);
        }
    }

    private static StringContent Request(string text) =>
        new(new JsonObject { ["input"] = text, ["model"] = "bge-small-zh-shaped" }.ToJsonString(), Encoding.UTF8, "application/json");

    private static async Task WaitUntilHealthy(HttpClient http, string url, CliProcess.Running server)
    {
        for (var started = DateTime.UtcNow; DateTime.UtcNow - started < TimeSpan.FromMinutes(2); await Task.Delay(100))
        {
            if (server.Process.HasExited) throw new InvalidOperationException($"serve exited ({server.Process.ExitCode}): {server.StderrSoFar}");
            using var response = await http.GetAsync(url + "/health");
            if (response.StatusCode == HttpStatusCode.OK) return;
        }
        throw new TimeoutException($"{url}/health did not answer 200 within 2 minutes");
    }

    [GeneratedRegex(@"listening on (http://[^\s,]+)")]
    private static partial Regex ListeningOn();
}
