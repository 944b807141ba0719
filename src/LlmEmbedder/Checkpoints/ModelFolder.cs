using LlmEmbedder.Modeling;
using LlmEmbedder.Training;

namespace LlmEmbedder.Checkpoints;

/// <summary>
/// What a --model folder holds, opened: the encoder folder of each side (one when the encoders are tied) and the
/// spec that says how to use them. A model folder is an encoder folder (config.json at its root: ours, Hugging
/// Face's or sentence-transformers'), a training output folder or a checkpoint-N folder (encoder/, or
/// query_encoder/ and key_encoder/ when untied).
/// </summary>
/// <param name="SpecSource">Where the spec came from: a file path, or a sentence saying it is the default.</param>
public sealed record ModelFolder(string QueryEncoderDir, string KeyEncoderDir, EncoderSpec Spec, string SpecSource)
{
    public const string TiedEncoderFolder = "encoder";
    public const string QueryEncoderFolder = "query_encoder";
    public const string KeyEncoderFolder = "key_encoder";
    public const string DefaultSpecSource = "defaults: the folder records no encoder spec";

    public bool Tied => QueryEncoderDir == KeyEncoderDir;

    public string EncoderDir(EmbeddingRole role) => role == EmbeddingRole.Query ? QueryEncoderDir : KeyEncoderDir;

    /// <summary>Opens a local folder (hub ids are resolved to their snapshot folder before).</summary>
    public static ModelFolder Open(string dir)
    {
        if (!Directory.Exists(dir)) throw new EmbedderException($"{dir}: model folder not found");
        string query, key;
        if (HasConfig(dir))
        {
            query = key = dir;
        }
        else if (HasConfig(Path.Combine(dir, TiedEncoderFolder)))
        {
            query = key = Path.Combine(dir, TiedEncoderFolder);
        }
        else if (HasConfig(Path.Combine(dir, QueryEncoderFolder)) && HasConfig(Path.Combine(dir, KeyEncoderFolder)))
        {
            query = Path.Combine(dir, QueryEncoderFolder);
            key = Path.Combine(dir, KeyEncoderFolder);
        }
        else
        {
            var latest = Training.Checkpointing.CheckpointFolders.FindLatest(dir);
            throw new EmbedderException($"{dir}: config.json not found, and no {TiedEncoderFolder}/ or {QueryEncoderFolder}/ + {KeyEncoderFolder}/ " +
                "(expected a model folder, a training output folder or a checkpoint-N folder)" +
                (latest is null ? "" : $"; the training has not finished: its latest checkpoint is {latest}"));
        }
        var config = BertConfig.Load(Path.Combine(query, "config.json"));
        var spec = ReadSpec(query, config, out var source);
        return new ModelFolder(query, key, spec, source);
    }

    /// <summary>
    /// The folder's spec after a command's flags (<see cref="EncoderSpec.Override"/>), with max lengths every encoder
    /// of the folder can take: checked from config.json, before any weights are loaded or output is written.
    /// </summary>
    public EncoderSpec Override(EncoderSpecOverrides flags, out IReadOnlyList<string> changes)
    {
        var spec = Spec.Override(flags, out changes);
        foreach (var dir in new[] { QueryEncoderDir, KeyEncoderDir }.Distinct())
            spec.ValidatedFor(BertConfig.Load(Path.Combine(dir, "config.json")));
        return spec;
    }

    /// <summary>
    /// The spec of an encoder folder: its encoder_spec.json; else what its sentence-transformers files say; else the
    /// args.json of the training run that wrote it (in the folder or beside it: a run of an earlier version of ours,
    /// or run_dense.py's); else <see cref="EncoderSpec.Default"/>. In the last two, a dense_pooler.bin in the folder is
    /// part of the model, as it always was for our commands.
    /// </summary>
    public static EncoderSpec ReadSpec(string encoderDir, BertConfig config, out string source)
    {
        bool hasDensePooler = File.Exists(Path.Combine(encoderDir, SentenceEncoder.DensePoolerFile));
        var specPath = Path.Combine(encoderDir, EncoderSpec.FileName);
        if (EncoderSpec.TryLoad(encoderDir) is { } spec)
        {
            source = specPath;
            return spec;
        }
        if (SentenceTransformersFolder.TryRead(encoderDir) is { } folder)
        {
            source = Path.Combine(encoderDir, "modules.json");
            return folder.ToSpec(config);
        }
        var parent = Path.GetDirectoryName(Path.GetFullPath(encoderDir).TrimEnd(Path.DirectorySeparatorChar));
        foreach (var argsPath in new[] { Path.Combine(encoderDir, RunArguments.FileName), parent is null ? null : Path.Combine(parent, RunArguments.FileName) })
        {
            if (argsPath is null || RunArguments.TryRead(argsPath) is not { } run) continue;
            source = argsPath;
            var fromRun = run.Model.ToEncoderSpec(tasks: null);
            return fromRun with { Dense = fromRun.Dense || hasDensePooler };
        }
        source = DefaultSpecSource;
        return EncoderSpec.Default(config) with { Dense = hasDensePooler };
    }

    private static bool HasConfig(string dir) => File.Exists(Path.Combine(dir, "config.json"));
}
