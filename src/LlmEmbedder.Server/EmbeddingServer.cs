using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace LlmEmbedder.Server;

/// <summary>
/// An OpenAI-compatible embedding server over a <see cref="TextEmbedder"/> (ASP.NET Core, Kestrel):
/// <list type="bullet">
/// <item><c>POST /v1/embeddings</c>: keys (documents) unless the body's <c>input_type</c> is "query";
/// <c>POST /v1/query/embeddings</c> and <c>/v1/document/embeddings</c>: the same, the side fixed by the route (a base
/// URL is all an OpenAI client lets one change).</item>
/// <item><c>GET /v1/models</c>, <c>GET /health</c> (503 until the model is loaded), <c>GET /metrics</c> (Prometheus).</item>
/// </list>
/// It listens at once and loads the model in the background, so health checks see it come up. Concurrent requests
/// are batched by the embedder; a full queue answers 429. On stop (SIGTERM), it stops accepting, answers the
/// requests in flight and releases the model.
/// </summary>
public sealed class EmbeddingServer : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly EmbeddingServerOptions options;
    private readonly ServerMetrics metrics = new();
    private readonly byte[]? apiKey;
    private Task loading = Task.CompletedTask;
    private volatile TextEmbedder? embedder;

    private EmbeddingServer(WebApplication app, EmbeddingServerOptions options)
    {
        this.app = app;
        this.options = options;
        apiKey = options.ApiKey is { Length: > 0 } key ? Encoding.UTF8.GetBytes(key) : null;
        Map(app);
    }

    /// <summary>Listens on <see cref="EmbeddingServerOptions.Urls"/> and starts loading the model with <paramref name="load"/>.</summary>
    public static async Task<EmbeddingServer> StartAsync(Func<TextEmbedder> load, EmbeddingServerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentRanges.Validate(options);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls([.. options.Urls]);
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout);
        if (!options.HandleSignals) builder.Services.AddSingleton<IHostLifetime, SignalFreeLifetime>();
        var app = builder.Build();
        var server = new EmbeddingServer(app, options);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        server.loading = Task.Run(() => server.Load(load), CancellationToken.None);
        return server;
    }

    /// <summary>The addresses Kestrel listens on (with the port it chose for port 0).</summary>
    public IReadOnlyList<string> Addresses => [.. app.Urls];

    /// <summary>Completes when the model is loaded, or faults with why it could not be.</summary>
    public Task ModelLoaded => loading;

    /// <summary>Completes once the server has been stopped (a signal, <see cref="StopAsync"/>, or a failed load).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => app.WaitForShutdownAsync(cancellationToken);

    public Task StopAsync() => app.StopAsync();

    /// <summary>Stops (answering requests in flight), then releases the model.</summary>
    public async ValueTask DisposeAsync()
    {
        await app.StopAsync().ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
        try
        {
            await loading.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The load's failure is reported through ModelLoaded; nothing to release.
        }
        embedder?.Dispose();
    }

    private void Load(Func<TextEmbedder> load)
    {
        try
        {
            var loaded = load();
            try
            {
                if (options.Dimensions is { } dimensions) EmbeddingDimensions.Check(dimensions, loaded.Dimension, "--dimensions");
            }
            catch
            {
                loaded.Dispose();
                throw;
            }
            metrics.QueueDepth = () => loaded.Waiting;
            loaded.BatchCompleted += metrics.Batch;
            embedder = loaded;
            metrics.ModelReady();
            options.Log?.Invoke($"model {options.ModelName} loaded: {loaded.Dimension} dimensions, {loaded.Spec.Pooling.Name()} pooling" +
                $"{(loaded.Spec.Normalize ? ", normalised" : "")}, max {loaded.Spec.QueryMaxLength}/{loaded.Spec.KeyMaxLength} tokens (query/key)");
        }
        catch (Exception)
        {
            app.Lifetime.StopApplication();
            throw;
        }
    }

    private void Map(WebApplication web)
    {
        web.Use(async (context, next) =>
        {
            await next(context).ConfigureAwait(false);
            var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            metrics.Request(route, context.Response.StatusCode);
        });
        web.Use(async (context, next) =>
        {
            if (apiKey is not null && context.Request.Path.StartsWithSegments("/v1") && !Authorized(context.Request))
            {
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await WriteError(context, new OpenAIError(401, "incorrect or missing API key: send Authorization: Bearer <key>", OpenAIError.InvalidRequest,
                    code: "invalid_api_key")).ConfigureAwait(false);
                return;
            }
            await next(context).ConfigureAwait(false);
        });
        web.MapPost("/v1/embeddings", context => Embeddings(context, routeRole: null));
        web.MapPost("/v1/query/embeddings", context => Embeddings(context, EmbeddingRole.Query));
        web.MapPost("/v1/document/embeddings", context => Embeddings(context, EmbeddingRole.Key));
        web.MapGet("/v1/models", Models);
        web.MapGet("/health", context =>
        {
            bool ready = embedder is not null;
            context.Response.StatusCode = ready ? 200 : 503;
            return context.Response.WriteAsJsonAsync(new Dictionary<string, string> { ["status"] = ready ? "ok" : "loading" });
        });
        web.MapGet("/metrics", async context =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
        });
        web.MapFallback(context => WriteError(context, new OpenAIError(404, $"no route {context.Request.Method} {context.Request.Path}", OpenAIError.InvalidRequest, code: "not_found")));
    }

    private bool Authorized(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()), apiKey);
    }

    private async Task Embeddings(HttpContext context, EmbeddingRole? routeRole)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            var model = embedder ?? throw new OpenAIError(503, "the model is still loading; retry shortly", "server_error", code: "model_not_ready") { RetryAfterSeconds = 1 };
            var request = EmbeddingsRequest.Parse(await ReadJson(context).ConfigureAwait(false), options.MaxInputs);
            if (routeRole is { } fixedRole && request.Role is { } asked && asked != fixedRole)
                throw OpenAIError.BadRequest($"input_type {(asked == EmbeddingRole.Query ? "query" : "document")} contradicts the route {context.Request.Path}", "input_type");
            var role = routeRole ?? request.Role ?? EmbeddingRole.Key;
            int dimensions = request.Dimensions ?? options.Dimensions ?? model.Dimension;
            try
            {
                EmbeddingDimensions.Check(dimensions, model.Dimension);
            }
            catch (EmbedderException error)
            {
                throw OpenAIError.BadRequest(error.Message, "dimensions");
            }

            var texts = Tokenize(model, request, role);
            Embeddings result;
            try
            {
                result = await model.EmbedAsync(texts, context.RequestAborted).ConfigureAwait(false);
            }
            catch (QueueFullException full)
            {
                throw new OpenAIError(429, full.Message, "rate_limit_error", code: "rate_limit_exceeded") { RetryAfterSeconds = 1 };
            }
            var vectors = EmbeddingDimensions.Truncate(result.Values, result.Dimension, dimensions, model.Spec.Normalize);
            await WriteEmbeddings(context, vectors, result.Count, dimensions, result.TokenCount, request.Format).ConfigureAwait(false);
        }
        catch (Exception error) when (context.RequestAborted.IsCancellationRequested && ClientGone(error))
        {
            // The client went away (a cancelled wait, or its body cut off); nobody reads an answer.
            if (!context.Response.HasStarted) context.Response.StatusCode = 499;
        }
        catch (OpenAIError error)
        {
            await WriteError(context, error).ConfigureAwait(false);
        }
        catch (Exception error)
        {
            options.Log?.Invoke($"error: {context.Request.Path}: {error.GetType().Name}: {error.Message}");
            await WriteError(context, new OpenAIError(500, $"internal error: {error.Message}", "server_error")).ConfigureAwait(false);
        }
        finally
        {
            metrics.Latency(clock.Elapsed);
        }
    }

    /// <summary>What a request fails with when its client goes: the wait or the write cancelled, the body cut off, or
    /// the error answer we could no longer send. Anything else is a fault of ours, logged even then.</summary>
    private static bool ClientGone(Exception error) =>
        error is OperationCanceledException or IOException or BadHttpRequestException or OpenAIError;

    private TokenizedTexts Tokenize(TextEmbedder model, EmbeddingsRequest request, EmbeddingRole role)
    {
        var task = request.Task ?? options.Task;
        // A model without instructions ignores the task, as encode does with a task from its input file.
        if (model.Spec.Instructions.Tasks.Count == 0) task = null;
        try
        {
            // The instruction rule every command follows, worded for a request; Tokenize below applies the same rule.
            model.Spec.Instructions.For(task, request.Task is null ? "the server's --task" : "task",
                "in the request's task field (or start the server with --task)");
        }
        catch (EmbedderException error)
        {
            throw OpenAIError.BadRequest(error.Message, "task");
        }
        try
        {
            return model.Tokenize(request.Input, role, task, request.Truncate ?? options.AutoTruncate);
        }
        catch (InputTooLongException tooLong)
        {
            throw OpenAIError.BadRequest($"input[{tooLong.Index}] has {tooLong.Tokens} tokens, more than the model's maximum of {tooLong.MaxLength}; " +
                "shorten it, or send \"truncate\": true", "input", "context_length_exceeded");
        }
    }

    private static async Task<JsonElement> ReadJson(HttpContext context)
    {
        var contentType = context.Request.ContentType;
        if (contentType is null || !contentType.Split(';')[0].Trim().Equals("application/json", StringComparison.OrdinalIgnoreCase))
            throw new OpenAIError(415, $"Content-Type must be application/json, got {contentType ?? "none"}", OpenAIError.InvalidRequest, code: "unsupported_media_type");
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            return document.RootElement.Clone();
        }
        catch (JsonException error)
        {
            throw OpenAIError.BadRequest($"the body is not valid JSON: {error.Message}", code: "invalid_json");
        }
        catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new OpenAIError(413, "the request body is too large", OpenAIError.InvalidRequest, code: "request_too_large");
        }
        catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status408RequestTimeout)
        {
            // Kestrel's minimum body data rate: the body stalled (a slow client, or a server too busy to read it).
            throw new OpenAIError(408, "the request body did not arrive in time; send it again", OpenAIError.InvalidRequest, code: "request_timeout");
        }
        catch (BadHttpRequestException error)
        {
            throw new OpenAIError(error.StatusCode, $"the request could not be read: {error.Message}", OpenAIError.InvalidRequest, code: "bad_request");
        }
    }

    private async Task WriteEmbeddings(HttpContext context, float[] vectors, int count, int dimension, int tokens, EncodingFormat format)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        await using (var json = new Utf8JsonWriter(context.Response.BodyWriter))
        {
            json.WriteStartObject();
            json.WriteString("object", "list");
            json.WriteStartArray("data");
            for (int i = 0; i < count; i++)
            {
                var row = vectors.AsSpan(i * dimension, dimension);
                json.WriteStartObject();
                json.WriteString("object", "embedding");
                json.WriteNumber("index", i);
                if (format == EncodingFormat.Base64)
                {
                    json.WriteBase64String("embedding", BitConverter.IsLittleEndian ? MemoryMarshal.AsBytes(row) : LittleEndianBytes(row));
                }
                else
                {
                    json.WriteStartArray("embedding");
                    foreach (var value in row) json.WriteNumberValue(value);
                    json.WriteEndArray();
                }
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteString("model", options.ModelName);
            json.WriteStartObject("usage");
            json.WriteNumber("prompt_tokens", tokens);
            json.WriteNumber("total_tokens", tokens);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        await context.Response.BodyWriter.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }

    private static byte[] LittleEndianBytes(ReadOnlySpan<float> row)
    {
        var bytes = new byte[row.Length * sizeof(float)];
        for (int i = 0; i < row.Length; i++) System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), row[i]);
        return bytes;
    }

    private Task Models(HttpContext context) => context.Response.WriteAsJsonAsync(new Dictionary<string, object>
    {
        ["object"] = "list",
        ["data"] = new[] { new Dictionary<string, object> { ["id"] = options.ModelName, ["object"] = "model", ["created"] = 0, ["owned_by"] = "llm-embedder" } },
    });

    private static async Task WriteError(HttpContext context, OpenAIError error)
    {
        context.Response.StatusCode = error.Status;
        context.Response.ContentType = "application/json";
        if (error.RetryAfterSeconds is { } seconds) context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var body = error.ToJson();
        context.Response.ContentLength = body.Length;
        try
        {
            await context.Response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception gone) when (context.RequestAborted.IsCancellationRequested && gone is OperationCanceledException or IOException)
        {
            // The client left before its error was written: nobody to tell.
        }
    }

    /// <summary>A host lifetime that leaves the process's signals alone: the host stops when told to.</summary>
    private sealed class SignalFreeLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
