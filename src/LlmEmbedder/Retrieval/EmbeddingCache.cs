using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Retrieval;

/// <summary>
/// A model folder opened for inference and the spec to encode with (the folder's, after the command's flags).
/// Everything the embeddings depend on is known from these without loading the weights, so a second run with
/// everything cached never loads the model.
/// </summary>
/// <param name="Overridden">What the flags changed in the folder's spec ("pooling mean → cls"), for the command to report.</param>
/// <param name="Backend">What runs the model; null: TorchSharp.</param>
public sealed record EncoderRequest(ModelFolder Model, EncoderSpec Spec, IReadOnlyList<string>? Overridden = null, InferenceBackend? Backend = null)
{
    /// <summary>One line saying which flags override the model's spec, or null when none do.</summary>
    public string? OverrideNote => Overridden is { Count: > 0 } changes
        ? $"flags override the model's encoder spec ({Model.SpecSource}): {string.Join(", ", changes)}"
        : null;

    /// <summary>The folder's own spec, no flags.</summary>
    public static EncoderRequest Open(string modelDir)
    {
        var model = ModelFolder.Open(modelDir);
        return new EncoderRequest(model, model.Spec);
    }

    public IEmbeddingModel Load(EmbeddingRole role) => (Backend ?? InferenceBackend.Torch).Load(Model.EncoderDir(role), Spec);
}

/// <summary>
/// What a cached embedding matrix depends on: the model (its folder's files by path, size and modification time),
/// the encoder spec that applies (pooling, dense, normalisation, the side's max length, dtype), the backend (ONNX Runtime and
/// its file, when not TorchSharp), the instruction prefix and the texts themselves (a
/// SHA-256 of every text, so an edited corpus misses). The key template is recorded for people reading the
/// metadata; the rendered texts already change with it.
/// </summary>
public sealed record EmbeddingCacheKey(
    EncoderRequest Encoder,
    EmbeddingRole Role,
    string ModelFingerprint,
    string InstructionPrefix,
    string? KeyTemplate,
    IReadOnlyList<string> Texts)
{
    public static EmbeddingCacheKey For(EncoderRequest encoder, EmbeddingRole role, string instructionPrefix, string? keyTemplate, IReadOnlyList<string> texts) =>
        new(encoder, role, EmbeddingCache.ModelFingerprint(encoder.Model.EncoderDir(role)), instructionPrefix, keyTemplate, texts);

    public string TextsHash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[8];
        foreach (var text in Texts)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(length, bytes.Length);
            sha.AppendData(length);
            sha.AppendData(bytes);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Everything the key is made of, as the JSON stored beside the matrix.</summary>
    public JsonObject Describe()
    {
        var description = new JsonObject
        {
            ["model_dir"] = Path.GetFullPath(Encoder.Model.EncoderDir(Role)),
            ["model_fingerprint"] = ModelFingerprint,
            ["pooling"] = Encoder.Spec.Pooling.Name(),
            ["dense"] = Encoder.Spec.Dense,
            ["normalize"] = Encoder.Spec.Normalize,
            ["max_length"] = Encoder.Spec.MaxLength(Role),
            ["dtype"] = EncoderSpec.DtypeName(Encoder.Spec.Dtype),
            ["instruction"] = InstructionPrefix,
            ["key_template"] = KeyTemplate,
            ["rows"] = Texts.Count,
            ["texts_sha256"] = TextsHash(),
        };
        // Torch entries keep the fields they always had, so caches written before backends existed stay valid.
        if (Encoder.Backend is { Kind: BackendKind.Onnx } backend)
        {
            description["backend"] = backend.Name;
            description["onnx_file"] = backend.OnnxFile;
        }
        return description;
    }

    /// <summary>The file name stem: a SHA-256 of <see cref="Describe"/>.</summary>
    public string Hash() => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Describe().ToJsonString())));
}

/// <summary>
/// Corpus embeddings kept on disk between runs, so evaluating (or mining with) the same model on the same corpus a
/// second time skips encoding. Each entry is <c>embeddings/&lt;key&gt;.npy</c> (float32 [rows, dimension]) with
/// <c>&lt;key&gt;.json</c> saying what it was computed from. Entries are written atomically; a damaged or
/// mismatched file is treated as absent and rewritten.
/// </summary>
public sealed class EmbeddingCache
{
    public EmbeddingCache(string directory) => Directory = Path.GetFullPath(directory);

    /// <summary>The cache folder; entries live in its embeddings/ subfolder.</summary>
    public string Directory { get; }

    /// <summary>$LLM_EMBEDDER_CACHE, else $XDG_CACHE_HOME/llm-embedder, else ~/.cache/llm-embedder.</summary>
    public static string DefaultDirectory(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        if (environment("LLM_EMBEDDER_CACHE") is { Length: > 0 } explicitDir) return explicitDir;
        if (environment("XDG_CACHE_HOME") is { Length: > 0 } xdg) return Path.Combine(xdg, "llm-embedder");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "llm-embedder");
    }

    /// <summary>
    /// Identifies a model folder without reading its weights: the folder's full path and, for each file in it and in
    /// its module subfolders, the relative name, size and last-write time. Retraining into the same folder changes
    /// the sizes or times, so stale embeddings are not reused.
    /// </summary>
    public static string ModelFingerprint(string modelDir)
    {
        var root = Path.GetFullPath(modelDir);
        var text = new StringBuilder(root).Append('\n');
        var files = System.IO.Directory.EnumerateFiles(root, "*", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 1 })
            .Order(StringComparer.Ordinal);
        foreach (var file in files)
        {
            var info = new FileInfo(file);
            text.Append(CultureInfo.InvariantCulture, $"{Path.GetRelativePath(root, file)}\t{info.Length}\t{info.LastWriteTimeUtc.Ticks}\n");
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    public string MatrixPath(EmbeddingCacheKey key) => Path.Combine(Directory, "embeddings", key.Hash() + ".npy");

    /// <summary>The cached matrix [rows, dimension], or null when there is none (or it does not fit the key).</summary>
    public (float[] Values, int Dimension)? TryGet(EmbeddingCacheKey key)
    {
        var path = MatrixPath(key);
        if (!File.Exists(path)) return null;
        try
        {
            var (values, rows, columns) = Npy.ReadFloat32(path);
            return rows == key.Texts.Count && columns > 0 ? (values, columns) : null;
        }
        catch (Exception e) when (e is EmbedderException or IOException or ArgumentException or FormatException or OverflowException)
        {
            return null;
        }
    }

    public void Put(EmbeddingCacheKey key, float[] embeddings, int dimension)
    {
        var path = MatrixPath(key);
        Npy.WriteFloat32(path, embeddings, key.Texts.Count, dimension);
        var description = key.Describe();
        description["dimension"] = dimension;
        description["created_utc"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        FileUtil.WriteAllTextAtomic(Path.ChangeExtension(path, ".json"), description.ToJsonString(JsonFormatting.TwoSpaces) + "\n");
    }
}
