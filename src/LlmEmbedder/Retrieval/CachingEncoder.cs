using LlmEmbedder.Modeling;

namespace LlmEmbedder.Retrieval;

/// <summary>Progress of one encoding pass: <paramref name="What"/> is "corpus", "queries", "pool", ...</summary>
public sealed record EncodingProgress(string What, int Done, int Total);

/// <summary>Embeddings of a batch of texts, and whether they came from the cache.</summary>
public sealed record EncodedTexts(float[] Values, int Dimension, bool FromCache);

/// <summary>
/// Encodes queries with the query side and keys with the key side of a model (one encoder when tied), through an
/// <see cref="EmbeddingCache"/> when given: a matrix already in the cache is read back, anything else is encoded and
/// stored. A side is loaded on its first cache miss only, and owned until disposed; encoders handed in (training's
/// own evaluation) stay the caller's.
/// </summary>
public sealed class CachingEncoder : IDisposable
{
    private readonly EmbeddingCache? cache;
    private readonly EncoderRequest? request;
    private readonly bool ownsEncoders;
    private IEmbeddingModel? queryEncoder;
    private IEmbeddingModel? keyEncoder;

    public CachingEncoder(EncoderRequest request, EmbeddingCache? cache)
    {
        this.request = request;
        this.cache = cache;
        ownsEncoders = true;
    }

    /// <summary>Encodes with encoders already loaded (not disposed here), without a cache.</summary>
    public CachingEncoder(IEmbeddingModel queryEncoder, IEmbeddingModel keyEncoder)
    {
        this.queryEncoder = queryEncoder;
        this.keyEncoder = keyEncoder;
    }

    /// <summary>Whether the model's embeddings are L2-normalised (its spec's metric), known without loading it.</summary>
    public bool Normalizes => (request?.Spec ?? queryEncoder!.Spec).Normalize;

    /// <summary>Whether a model has been loaded (false while everything came from the cache).</summary>
    public bool ModelLoaded => queryEncoder is not null || keyEncoder is not null;

    /// <summary>The encoder of a side (loading it now if no encoding needed it yet).</summary>
    public IEmbeddingModel Encoder(EmbeddingRole role)
    {
        if (role == EmbeddingRole.Query && queryEncoder is not null) return queryEncoder;
        if (role == EmbeddingRole.Key && keyEncoder is not null) return keyEncoder;
        var loaded = request!.Model.Tied ? (queryEncoder ?? keyEncoder ?? request.Load(role)) : request.Load(role);
        if (request.Model.Tied) queryEncoder = keyEncoder = loaded;
        else if (role == EmbeddingRole.Query) queryEncoder = loaded;
        else keyEncoder = loaded;
        return loaded;
    }

    /// <param name="texts">Texts without the instruction.</param>
    /// <param name="instructionPrefix">Prepended to every text before encoding ("" for none).</param>
    /// <param name="keyTemplate">How the texts were rendered from corpus rows, recorded in the cache entry (null for queries).</param>
    public EncodedTexts Encode(IReadOnlyList<string> texts, EmbeddingRole role, string instructionPrefix, string? keyTemplate, int batchSize,
        string what, IProgress<EncodingProgress>? progress = null)
    {
        var key = cache is null ? null : EmbeddingCacheKey.For(request!, role, instructionPrefix, keyTemplate, texts);
        if (key is not null && cache!.TryGet(key) is { } cached)
        {
            progress?.Report(new EncodingProgress(what, texts.Count, texts.Count));
            return new EncodedTexts(cached.Values, cached.Dimension, FromCache: true);
        }
        var inputs = instructionPrefix.Length == 0 ? texts : texts.Select(t => instructionPrefix + t).ToList();
        var rowProgress = progress is null ? null : new InlineProgress<int>(done => progress.Report(new EncodingProgress(what, done, texts.Count)));
        var encoder = Encoder(role);
        var values = encoder.Encode(inputs, role, batchSize, rowProgress);
        if (key is not null) cache!.Put(key, values, encoder.Dimension);
        return new EncodedTexts(values, encoder.Dimension, FromCache: false);
    }

    public void Dispose()
    {
        if (!ownsEncoders) return;
        queryEncoder?.Dispose();
        if (!ReferenceEquals(keyEncoder, queryEncoder)) keyEncoder?.Dispose();
    }
}
