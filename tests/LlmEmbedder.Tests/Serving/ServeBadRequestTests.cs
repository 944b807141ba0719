using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace LlmEmbedder.Tests.Serving;

/// <summary>
/// Requests an OpenAI client, a gateway or a person with curl gets wrong: each is answered with its 4xx status and an
/// error in the OpenAI API's shape naming the field at fault, and the next good request is served.
/// </summary>
public sealed class ServeBadRequestTests(ServedModel served) : IClassFixture<ServedModel>
{
    public static TheoryData<string, string, string?, string?, int, string?> Cases() => new()
    {
        // name, path, content type (null: none), body, status, param
        { "no API key", "/v1/embeddings", "application/json", """{"input": "你好"}""", 401, null },
        { "wrong API key", "/v1/embeddings", "application/json", """{"input": "你好"}""", 401, null },
        { "invalid JSON", "/v1/embeddings", "application/json", """{"input": "你好""", 400, null },
        { "body is an array", "/v1/embeddings", "application/json", """["你好"]""", 400, null },
        { "no input", "/v1/embeddings", "application/json", """{"model": "m"}""", 400, "input" },
        { "input is a number", "/v1/embeddings", "application/json", """{"input": 42}""", 400, "input" },
        { "input is token ids", "/v1/embeddings", "application/json", """{"input": [101, 872, 102]}""", 400, "input" },
        { "input holds null", "/v1/embeddings", "application/json", """{"input": ["你好", null]}""", 400, "input" },
        { "input is an empty array", "/v1/embeddings", "application/json", """{"input": []}""", 400, "input" },
        { "input is an empty string", "/v1/embeddings", "application/json", """{"input": ""}""", 400, "input" },
        { "too many inputs", "/v1/embeddings", "application/json", """{"input": ["1","2","3","4","5","6","7","8","9"]}""", 413, "input" },
        { "over-long input", "/v1/embeddings", "application/json", "{\"input\": \"" + string.Concat(Enumerable.Repeat("很长的段落文本。", 40)) + "\"}", 400, "input" },
        { "model is a number", "/v1/embeddings", "application/json", """{"input": "你好", "model": 3}""", 400, "model" },
        { "unknown encoding_format", "/v1/embeddings", "application/json", """{"input": "你好", "encoding_format": "binary"}""", 400, "encoding_format" },
        { "dimensions 0", "/v1/embeddings", "application/json", """{"input": "你好", "dimensions": 0}""", 400, "dimensions" },
        { "dimensions over the model's", "/v1/embeddings", "application/json", """{"input": "你好", "dimensions": 33}""", 400, "dimensions" },
        { "dimensions as a string", "/v1/embeddings", "application/json", """{"input": "你好", "dimensions": "8"}""", 400, "dimensions" },
        { "dimensions not an integer", "/v1/embeddings", "application/json", """{"input": "你好", "dimensions": 8.5}""", 400, "dimensions" },
        { "misspelt field", "/v1/embeddings", "application/json", """{"input": "你好", "dimension": 8}""", 400, "dimension" },
        { "unknown input_type", "/v1/embeddings", "application/json", """{"input": "你好", "input_type": "question"}""", 400, "input_type" },
        { "input_type against the route", "/v1/query/embeddings", "application/json", """{"input": "你好", "input_type": "document"}""", 400, "input_type" },
        { "unknown task", "/v1/embeddings", "application/json", """{"input": "你好", "task": "chat"}""", 400, "task" },
        { "truncate not a boolean", "/v1/embeddings", "application/json", """{"input": "你好", "truncate": "yes"}""", 400, "truncate" },
        { "text/plain body", "/v1/embeddings", "text/plain", """{"input": "你好"}""", 415, null },
        { "no content type", "/v1/embeddings", null, """{"input": "你好"}""", 415, null },
        { "unknown route", "/v1/embedding", "application/json", """{"input": "你好"}""", 404, null },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadRequestGetsAnOpenAIErrorAndTheNextRequestIsServed(string name, string path, string? contentType, string? body, int status, string? param)
    {
        using var http = name switch
        {
            "no API key" => served.Client(authorized: false),
            _ => served.Client(),
        };
        if (name == "wrong API key") http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "not-the-key");
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body ?? ""));
        if (contentType is not null) content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        using var response = await http.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"{name}: {(int)response.StatusCode} {text}");
        var error = JsonNode.Parse(text)!["error"]!.AsObject();
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()), name);
        Assert.False(string.IsNullOrWhiteSpace(error["type"]!.GetValue<string>()), name);
        Assert.True(error.ContainsKey("param") && error.ContainsKey("code"), $"{name}: {text}");
        Assert.Equal(param, error["param"]?.GetValue<string>());
        if (status == 401) Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);

        using var good = served.Client();
        using var next = await good.PostAsync("/v1/embeddings", new StringContent("""{"input": ["你好", "世界"]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(2, JsonNode.Parse(await next.Content.ReadAsStringAsync())!["data"]!.AsArray().Count);
    }

    /// <summary>
    /// A client that announces a body and stops sending it (or a server too busy to read it) trips Kestrel's minimum
    /// body data rate (240 bytes/s after a 5 s grace): that is a 408 in the OpenAI shape, not an internal error.
    /// </summary>
    [Fact]
    public async Task ABodyThatStallsGetsA408InTheOpenAIShape()
    {
        await using var server = await ServingModel.StartInProcess(served.Model, task: "qa");
        await server.ModelLoaded;
        var address = new Uri(server.Addresses.Single());
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        var stream = tcp.GetStream();
        const string head = "POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"input\": \"";
        await stream.WriteAsync(Encoding.UTF8.GetBytes(head));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var received = new List<byte>();
        var buffer = new byte[4096];
        string Text() => Encoding.UTF8.GetString(received.ToArray());
        bool Complete()
        {
            var text = Text();
            int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var length = Regex.Match(text, @"Content-Length: (\d+)", RegexOptions.IgnoreCase);
            return end >= 0 && length.Success && Encoding.UTF8.GetByteCount(text[(end + 4)..]) >= int.Parse(length.Groups[1].Value);
        }
        while (!Complete())
        {
            int read = await stream.ReadAsync(buffer, timeout.Token);
            if (read == 0) break;
            received.AddRange(buffer.AsSpan(0, read).ToArray());
        }
        var text = Text();
        Assert.StartsWith("HTTP/1.1 408", text);
        var error = JsonNode.Parse(text[(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..])!["error"]!;
        Assert.Equal("request_timeout", error["code"]!.GetValue<string>());
    }

    /// <summary>A client that closes its connection halfway through its body is counted as 499 (client gone), not as a
    /// failure of the server's, and the server goes on answering.</summary>
    [Fact]
    public async Task AClientThatLeavesMidBodyIsCountedAs499()
    {
        await using var server = await ServingModel.StartInProcess(served.Model, task: "qa");
        await server.ModelLoaded;
        var address = new Uri(server.Addresses.Single());
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(address.Host, address.Port);
            const string head = "POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"input\": \"";
            await tcp.GetStream().WriteAsync(Encoding.UTF8.GetBytes(head));
            tcp.Client.Shutdown(SocketShutdown.Both);
        }
        using var http = new HttpClient { BaseAddress = address };
        string Counted(string metrics) => string.Join("\n", metrics.Split('\n').Where(l => l.StartsWith("llm_embedder_requests_total{", StringComparison.Ordinal)));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string counted;
        do
        {
            await Task.Delay(100);
            counted = Counted(await http.GetStringAsync("/metrics"));
        }
        while (!counted.Contains("status=\"499\"", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(20));
        Assert.Contains("status=\"499\"", counted);
        Assert.DoesNotContain("status=\"500\"", counted);
        using var next = await http.PostAsync("/v1/embeddings", new StringContent("""{"input": "你好"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task AModelWithSeveralTasksNeedsATaskWhenTheServerHasNoDefault()
    {
        await using var server = await ServingModel.StartInProcess(served.Model);
        await server.ModelLoaded;
        using var http = new HttpClient { BaseAddress = new Uri(server.Addresses.Single()) };
        using var response = await http.PostAsync("/v1/embeddings", new StringContent("""{"input": "你好"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("task", error["param"]!.GetValue<string>());
        Assert.Contains("icl, qa", error["message"]!.GetValue<string>());
        using var named = await http.PostAsync("/v1/embeddings", new StringContent("""{"input": "你好", "task": "icl"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, named.StatusCode);
    }
}
