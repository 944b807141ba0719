namespace LlmEmbedder.Server;

/// <summary>How <see cref="EmbeddingServer"/> listens and what it accepts. The model's own options (batching, queue,
/// dtype) are the <see cref="Inference.TextEmbedderOptions"/> it is loaded with.</summary>
public sealed record EmbeddingServerOptions
{
    /// <summary>Loopback only: serving beyond this machine is a decision the user states with --urls.</summary>
    public const string DefaultUrl = "http://127.0.0.1:8080";

    /// <summary>The environment variable the API key may come from (kept out of the process list).</summary>
    public const string ApiKeyVariable = "LLM_EMBEDDER_API_KEY";

    /// <summary>The name responses and /v1/models give the model.</summary>
    public required string ModelName { get; init; }

    public IReadOnlyList<string> Urls { get; init; } = [DefaultUrl];

    /// <summary>When set, every /v1 request needs <c>Authorization: Bearer</c> this key.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Texts in one request at most (the OpenAI API allows 2048).</summary>
    [ArgumentRange(1)]
    public int MaxInputs { get; init; } = 2048;

    /// <summary>The instruction task of requests that name none (needed for a model with several tasks).</summary>
    public string? Task { get; init; }

    /// <summary>The embedding size of requests that give no <c>dimensions</c> (null: the model's): a Matryoshka model served short.</summary>
    public int? Dimensions { get; init; }

    /// <summary>Whether texts over the max length are cut (text-embeddings-inference's --auto-truncate) or refused (the OpenAI API).</summary>
    public bool AutoTruncate { get; init; }

    /// <summary>Whether SIGTERM and Ctrl-C stop the server (the command line); off when hosted in a test or an application.</summary>
    public bool HandleSignals { get; init; } = true;

    /// <summary>How long a stop waits for requests in flight.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where the server's own lines go (start, stop, unexpected errors); nowhere by default.</summary>
    public Action<string>? Log { get; init; }
}
