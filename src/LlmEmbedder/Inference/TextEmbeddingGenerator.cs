using Microsoft.Extensions.AI;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Inference;

/// <summary>
/// A <see cref="TextEmbedder"/> as Microsoft.Extensions.AI's <see cref="IEmbeddingGenerator{TInput,TEmbedding}"/>, for
/// code written against that abstraction (Semantic Kernel, vector stores, RAG pipelines). The generator embeds one
/// side of retrieval for one task; <see cref="EmbeddingGenerationOptions.AdditionalProperties"/> may switch it per
/// call with <c>input_type</c> ("query", or "document"/"passage"/"key") and <c>task</c>, the names the server uses.
/// <see cref="EmbeddingGenerationOptions.Dimensions"/> keeps the first N dimensions, re-normalised when the model
/// normalises (as the OpenAI API does).
/// </summary>
public sealed class TextEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    public const string InputTypeProperty = "input_type";
    public const string TaskProperty = "task";

    private readonly TextEmbedder embedder;
    private readonly EmbeddingRole role;
    private readonly string? task;
    private readonly bool ownsEmbedder;

    /// <param name="role">The side texts are embedded as unless a call says otherwise: keys (documents) by default.</param>
    /// <param name="task">The instruction task (needed when the model has several).</param>
    /// <param name="ownsEmbedder">Whether disposing the generator disposes <paramref name="embedder"/>.</param>
    public TextEmbeddingGenerator(TextEmbedder embedder, EmbeddingRole role = EmbeddingRole.Key, string? task = null, bool ownsEmbedder = false)
    {
        this.embedder = embedder;
        this.role = role;
        this.task = task;
        this.ownsEmbedder = ownsEmbedder;
        Metadata = new EmbeddingGeneratorMetadata("llm-embedder", providerUri: null, embedder.ModelId, embedder.Dimension);
    }

    public EmbeddingGeneratorMetadata Metadata { get; }

    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(
        IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var (callRole, callTask) = (role, task);
        if (options?.AdditionalProperties is { } properties)
        {
            if (properties.TryGetValue(InputTypeProperty, out var inputType) && inputType is not null)
                callRole = ParseInputType(inputType.ToString()!);
            if (properties.TryGetValue(TaskProperty, out var taskValue) && taskValue is not null)
                callTask = taskValue.ToString();
        }
        int dimension = options?.Dimensions ?? embedder.Dimension;
        EmbeddingDimensions.Check(dimension, embedder.Dimension);

        var result = await embedder.EmbedAsync(values as IReadOnlyList<string> ?? values.ToList(), callRole, callTask, cancellationToken).ConfigureAwait(false);
        var vectors = EmbeddingDimensions.Truncate(result.Values, result.Dimension, dimension, embedder.Spec.Normalize);
        var created = DateTimeOffset.UtcNow;
        var embeddings = new GeneratedEmbeddings<Embedding<float>>(Enumerable.Range(0, result.Count)
            .Select(i => new Embedding<float>(vectors.AsMemory(i * dimension, dimension)) { ModelId = embedder.ModelId, CreatedAt = created }))
        {
            Usage = new UsageDetails { InputTokenCount = result.TokenCount, TotalTokenCount = result.TokenCount },
        };
        return embeddings;
    }

    /// <summary>"query" for queries; "document", "passage" or "key" for keys (the names embedding APIs use).</summary>
    public static EmbeddingRole ParseInputType(string inputType) => inputType switch
    {
        "query" => EmbeddingRole.Query,
        "document" or "passage" or "key" => EmbeddingRole.Key,
        _ => throw new EmbedderException($"input_type \"{inputType}\": expected query, document, passage or key"),
    };

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return Metadata;
        if (serviceType.IsInstanceOfType(embedder)) return embedder;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        if (ownsEmbedder) embedder.Dispose();
    }
}

/// <summary>Microsoft.Extensions.AI views of a <see cref="TextEmbedder"/>.</summary>
public static class TextEmbedderGeneratorExtensions
{
    /// <summary>A generator embedding keys (documents, passages) for <paramref name="task"/>.</summary>
    public static TextEmbeddingGenerator AsKeyGenerator(this TextEmbedder embedder, string? task = null) => new(embedder, EmbeddingRole.Key, task);

    /// <summary>A generator embedding queries for <paramref name="task"/>.</summary>
    public static TextEmbeddingGenerator AsQueryGenerator(this TextEmbedder embedder, string? task = null) => new(embedder, EmbeddingRole.Query, task);
}
