using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Modeling;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;

namespace LlmEmbedder.Tests.Reference;

/// <summary>
/// A pretrained BERT exported to ONNX, run by ONNX Runtime as the reference, together with the same
/// weights converted to a Hugging Face BertModel folder for our own code to load.
/// </summary>
internal sealed class OnnxReferenceModel : IDisposable
{
    public const string LastHiddenStateOutput = "last_hidden_state";
    private static readonly string[] InputNames = ["input_ids", "attention_mask", "token_type_ids"];

    private readonly Lazy<InferenceSession> session;

    private OnnxReferenceModel(string name, string onnxPath, string vocabPath, string tokenizerJsonPath, string huggingFaceDir,
        OnnxBertConversion conversion, IReadOnlyList<string> graphInputs, IReadOnlyList<string> graphOutputs)
    {
        Name = name;
        OnnxPath = onnxPath;
        VocabPath = vocabPath;
        TokenizerJsonPath = tokenizerJsonPath;
        HuggingFaceDir = huggingFaceDir;
        Config = conversion.Config;
        LinearWeightInitializer = conversion.LinearWeightInitializer;
        GraphInputs = graphInputs;
        GraphOutputs = graphOutputs;
        session = new Lazy<InferenceSession>(CreateSession, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public string Name { get; }
    public string OnnxPath { get; }

    /// <summary>The English uncased WordPiece vocab, one token a line, LF line ends (the resource has CRLF).</summary>
    public string VocabPath { get; }

    /// <summary>
    /// A Hugging Face tokenizers file for <see cref="VocabPath"/> (BERT uncased pipeline: BertNormalizer with
    /// lowercase, BertPreTokenizer, WordPiece, [CLS] $A [SEP] template), for Tokenizers.DotNet.
    /// </summary>
    public string TokenizerJsonPath { get; }

    /// <summary>config.json, model.safetensors (BertModel keys, no pooler), vocab.txt, tokenizer_config.json.</summary>
    public string HuggingFaceDir { get; }

    public BertConfig Config { get; }

    /// <summary>Checkpoint key of each Linear weight → the anonymous ONNX initializer it came from.</summary>
    public IReadOnlyDictionary<string, string> LinearWeightInitializer { get; }

    public IReadOnlyList<string> GraphInputs { get; }
    public IReadOnlyList<string> GraphOutputs { get; }

    /// <summary>Writes model.onnx, vocab.txt and the converted Hugging Face folder into <paramref name="directory"/>.</summary>
    public static OnnxReferenceModel Extract(string name, Stream onnxResource, Stream vocabResource, string directory)
    {
        Directory.CreateDirectory(directory);
        var onnxPath = Path.Combine(directory, "model.onnx");
        FileUtil.WriteAtomic(onnxPath, onnxResource.CopyTo);

        string[] vocab;
        using (var reader = new StreamReader(vocabResource))
            vocab = reader.ReadToEnd().Split('\n').Select(line => line.TrimEnd('\r')).ToArray();
        if (vocab.Length > 0 && vocab[^1].Length == 0) vocab = vocab[..^1];
        var vocabText = string.Join('\n', vocab) + "\n";
        var vocabPath = Path.Combine(directory, "vocab.txt");
        FileUtil.WriteAllTextAtomic(vocabPath, vocabText);

        var graph = OnnxGraph.Load(onnxPath);
        var conversion = OnnxBertConversion.Convert(graph);
        if (conversion.Config.VocabSize != vocab.Length)
            throw new InvalidDataException($"{name}: vocab has {vocab.Length} tokens but word_embeddings has {conversion.Config.VocabSize} rows");
        if (!graph.Outputs.Contains(LastHiddenStateOutput) || !InputNames.All(graph.Inputs.Contains))
            throw new InvalidDataException(
                $"{name}: graph inputs [{string.Join(", ", graph.Inputs)}] / outputs [{string.Join(", ", graph.Outputs)}] lack {string.Join(", ", InputNames)} / {LastHiddenStateOutput}");

        var tokenizerJsonPath = Path.Combine(directory, "tokenizer.json");
        WriteTokenizerJson(tokenizerJsonPath, vocab);
        var huggingFaceDir = Path.Combine(directory, "hf");
        WriteHuggingFaceDir(huggingFaceDir, conversion, vocabText);
        return new OnnxReferenceModel(name, onnxPath, vocabPath, tokenizerJsonPath, huggingFaceDir, conversion, graph.Inputs, graph.Outputs);
    }

    /// <summary>
    /// The graph's last_hidden_state for token ids laid out [batch, seqLen] row-major; the result is
    /// [batch, seqLen, hidden] row-major.
    /// </summary>
    public float[] RunLastHiddenState(long[] inputIds, long[] attentionMask, long[] tokenTypeIds, int batch, int seqLen)
    {
        long count = (long)batch * seqLen;
        if (inputIds.Length != count || attentionMask.Length != count || tokenTypeIds.Length != count)
            throw new ArgumentException(
                $"expected {batch}x{seqLen} = {count} values each, got ids {inputIds.Length}, mask {attentionMask.Length}, types {tokenTypeIds.Length}");
        long[] shape = [batch, seqLen];
        using var ids = OrtValue.CreateTensorValueFromMemory(inputIds, shape);
        using var mask = OrtValue.CreateTensorValueFromMemory(attentionMask, shape);
        using var types = OrtValue.CreateTensorValueFromMemory(tokenTypeIds, shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Value.Run(runOptions, InputNames, [ids, mask, types], [LastHiddenStateOutput]);
        var output = outputs[0];
        var outputShape = output.GetTensorTypeAndShape().Shape;
        if (!outputShape.SequenceEqual(new long[] { batch, seqLen, Config.HiddenSize }))
            throw new InvalidDataException($"{Name}: {LastHiddenStateOutput} has shape [{string.Join(", ", outputShape)}]");
        return output.GetTensorDataAsSpan<float>().ToArray();
    }

    public void Dispose()
    {
        if (session.IsValueCreated) session.Value.Dispose();
    }

    private InferenceSession CreateSession()
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = 2,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        return new InferenceSession(OnnxPath, options);
    }

    private static void WriteHuggingFaceDir(string directory, OnnxBertConversion conversion, string vocabText)
    {
        Directory.CreateDirectory(directory);
        conversion.Config.Save(Path.Combine(directory, "config.json"));
        using (var scope = torch.NewDisposeScope())
        {
            var tensors = conversion.Weights.ToDictionary(p => p.Key, p => torch.tensor(p.Value.Data, p.Value.Shape));
            Safetensors.Write(Path.Combine(directory, "model.safetensors"), tensors);
        }
        FileUtil.WriteAllTextAtomic(Path.Combine(directory, "vocab.txt"), vocabText);
        var tokenizerConfig = new JsonObject
        {
            ["tokenizer_class"] = "BertTokenizer",
            ["do_lower_case"] = true,
            ["do_basic_tokenize"] = true,
            ["tokenize_chinese_chars"] = true,
            ["strip_accents"] = null,
            ["model_max_length"] = 512,
            ["unk_token"] = "[UNK]",
            ["sep_token"] = "[SEP]",
            ["pad_token"] = "[PAD]",
            ["cls_token"] = "[CLS]",
            ["mask_token"] = "[MASK]",
        };
        FileUtil.WriteAllTextAtomic(Path.Combine(directory, "tokenizer_config.json"), tokenizerConfig.ToJsonString() + "\n");
    }

    private static void WriteTokenizerJson(string path, string[] vocab)
    {
        string[] specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
        int Id(string token) => Array.IndexOf(vocab, token) is >= 0 and var id ? id : throw new InvalidDataException($"vocab has no {token}");
        var vocabMap = new JsonObject();
        for (int i = 0; i < vocab.Length; i++) vocabMap[vocab[i]] = i;
        JsonObject Piece(string kind, string id, int typeId) => new() { [kind] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray([.. specials.Select(token => (JsonNode)new JsonObject
            {
                ["id"] = Id(token), ["content"] = token, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            })]),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = true, ["strip_accents"] = null, ["lowercase"] = true,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Piece("SpecialToken", "[CLS]", 0), Piece("Sequence", "A", 0), Piece("SpecialToken", "[SEP]", 0)),
                ["pair"] = new JsonArray(Piece("SpecialToken", "[CLS]", 0), Piece("Sequence", "A", 0), Piece("SpecialToken", "[SEP]", 0),
                    Piece("Sequence", "B", 1), Piece("SpecialToken", "[SEP]", 1)),
                ["special_tokens"] = new JsonObject(new[] { "[CLS]", "[SEP]" }.Select(token => KeyValuePair.Create(token, (JsonNode?)new JsonObject
                {
                    ["id"] = token, ["ids"] = new JsonArray(Id(token)), ["tokens"] = new JsonArray(token),
                }))),
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = "##", ["max_input_chars_per_word"] = 100,
                ["vocab"] = vocabMap,
            },
        };
        FileUtil.WriteAllTextAtomic(path, json.ToJsonString() + "\n");
    }
}
