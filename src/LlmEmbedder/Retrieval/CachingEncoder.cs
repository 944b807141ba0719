using LlmEmbedder.Modeling;

namespace LlmEmbedder.Retrieval;

/// <summary>Progress of one encoding pass: <paramref name="What"/> is "corpus", "queries", "pool", ...</summary>
public sealed record EncodingProgress(string What, int Done, int Total);

/// <summary>Embeddings of a batch of texts, and whether they came from the cache.</summary>
public sealed record EncodedTexts(float[] Values, int Dimension, bool FromCache);

/// <summary>
/// Encodes through an <see cref="EmbeddingCache"/> (when given): a matrix already in the cache is read back, anything
/// else is encoded and stored. The model is loaded on the first cache miss only, and owned until disposed.
/// </summary>
public sealed class CachingEncoder : IDisposable
{
    private readonly EmbeddingCache? cache;
    private SentenceEncoder? encoder;

    public CachingEncoder(EncoderRequest request, EmbeddingCache? cache)
    {
        Request = request;
        this.cache = cache;
    }

    public EncoderRequest Request { get; }

    /// <summary>Whether the model has been loaded (false while everything came from the cache).</summary>
    public bool ModelLoaded => encoder is not null;

    /// <summary>The loaded model (loading it now if no encoding needed it yet).</summary>
    public SentenceEncoder Encoder => encoder ??= Request.Load();

    /// <param name="texts">Texts without the instruction.</param>
    /// <param name="instructionPrefix">Prepended to every text before encoding ("" for none).</param>
    /// <param name="keyTemplate">How the texts were rendered from corpus rows, recorded in the cache entry (null for queries).</param>
    public EncodedTexts Encode(IReadOnlyList<string> texts, string instructionPrefix, string? keyTemplate, int batchSize,
        string what, IProgress<EncodingProgress>? progress = null)
    {
        var key = cache is null ? null : EmbeddingCacheKey.For(Request, instructionPrefix, keyTemplate, texts);
        if (key is not null && cache!.TryGet(key) is { } cached)
        {
            progress?.Report(new EncodingProgress(what, texts.Count, texts.Count));
            return new EncodedTexts(cached.Values, cached.Dimension, FromCache: true);
        }
        var inputs = instructionPrefix.Length == 0 ? texts : texts.Select(t => instructionPrefix + t).ToList();
        var rowProgress = progress is null ? null : new InlineProgress<int>(done => progress.Report(new EncodingProgress(what, done, texts.Count)));
        var values = Encoder.Encode(inputs, batchSize, rowProgress);
        if (key is not null) cache!.Put(key, values, Encoder.Dimension);
        return new EncodedTexts(values, Encoder.Dimension, FromCache: false);
    }

    public void Dispose() => encoder?.Dispose();

    /// <summary>Reports on the calling thread, in order (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
