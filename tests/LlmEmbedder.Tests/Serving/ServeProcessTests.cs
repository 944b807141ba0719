using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Serving;

/// <summary>
/// `llm-embedder serve` as a process: SIGTERM while requests are in flight answers every one of them and exits 0; the
/// API key may come from the environment; a bad model or a taken port is one error line and exit 1.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class ServeProcessTests : IDisposable
{
    private const int SigTerm = 15;
    private readonly string dir = TestPaths.NewTempDir("serve-process");
    private readonly string model;

    public ServeProcessTests() => model = ServingModel.Create(dir);

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private static async Task WaitForHealth(HttpClient http, CliProcess.Running server)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            Assert.False(server.Process.HasExited, "serve exited before it was healthy");
            try
            {
                using var response = await http.GetAsync("/health");
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            Assert.True(DateTime.UtcNow < deadline, "serve did not become healthy within 2 minutes");
            await Task.Delay(100);
        }
    }

    private static StringContent Body(object input) => new(System.Text.Json.JsonSerializer.Serialize(new { input }), Encoding.UTF8, "application/json");

    [Fact]
    public async Task SigtermDuringLoadAnswersTheRequestsInFlightAndExitsZero()
    {
        int port = ServingModel.FreePort();
        using var server = CliProcess.Start(["serve", "--model", model, "--urls", $"http://127.0.0.1:{port}", "--task", "qa", "--batch_size", "2"]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromMinutes(2) };
        await WaitForHealth(http, server);

        // Enough work to still be running when the signal comes: 8 requests of 400 texts, 2 texts per forward pass.
        var texts = Enumerable.Range(0, 400).Select(i => $"第{i}段：{ServingModel.Texts[i % ServingModel.Texts.Length]}").ToArray();
        var inFlight = Enumerable.Range(0, 8).Select(_ => http.PostAsync("/v1/embeddings", Body(texts))).ToList();
        await Task.Delay(300);
        Assert.Contains(inFlight, request => !request.IsCompleted);
        Assert.Equal(0, kill(server.Process.Id, SigTerm));
        var responses = await Task.WhenAll(inFlight);
        var result = server.Wait(TimeSpan.FromMinutes(2));

        foreach (var response in responses)
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
            Assert.Equal(texts.Length, JsonNode.Parse(text)!["data"]!.AsArray().Count);
        }
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("llm-embedder: stopped", result.Stderr);
        Assert.DoesNotContain("Exception", result.Stderr);
    }

    [Fact]
    public async Task TheApiKeyMayComeFromTheEnvironment()
    {
        int port = ServingModel.FreePort();
        using var server = CliProcess.Start(["serve", "--model", model, "--urls", $"http://127.0.0.1:{port}", "--task", "qa"],
            environment: new Dictionary<string, string> { ["LLM_EMBEDDER_API_KEY"] = "from-env" });
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        await WaitForHealth(http, server);
        using (var refused = await http.PostAsync("/v1/embeddings", Body("你好")))
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "from-env");
        using (var accepted = await http.PostAsync("/v1/embeddings", Body("你好")))
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        Assert.Equal(0, kill(server.Process.Id, SigTerm));
        Assert.Equal(0, server.Wait(TimeSpan.FromMinutes(1)).ExitCode);
    }

    [Fact]
    public void AMissingModelOrATakenPortIsOneErrorLine()
    {
        var missing = CliProcess.Run(["serve", "--model", Path.Combine(dir, "nope"), "--urls", $"http://127.0.0.1:{ServingModel.FreePort()}"]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Matches("^llm-embedder: error: .*nope.*not found", missing.StderrLines.Single());

        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var busy = CliProcess.Run(["serve", "--model", model, "--urls", $"http://127.0.0.1:{port}", "--task", "qa"]);
        Assert.Equal(1, busy.ExitCode);
        Assert.StartsWith($"llm-embedder: error: cannot listen on http://127.0.0.1:{port}", busy.StderrLines.Single());

        var badTask = CliProcess.Run(["serve", "--model", model, "--task", "chat"]);
        Assert.Equal(1, badTask.ExitCode);
        Assert.Contains("\"chat\"", badTask.StderrLines.Single());
    }
}
