using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Training.Checkpointing;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// --pooling_method dense: the reference's bias-free Linear(d, d) after pooling, trained with the encoder and saved
/// as dense_pooler.bin. PyTorch (tests/reference/dense_pooler_reference.py) reads what we write and applies it; the
/// first AdamW step gives a hand-computable update of every dense weight.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class DensePoolingTrainingTests : IDisposable
{
    private const double LearningRate = 1e-3;
    private readonly string dir = TestPaths.NewTempDir("dense-train");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void DensePoolerFileWeWriteLoadsInPyTorchWithIdenticalWeights()
    {
        using var generator = new Generator(11);
        using var pooler = DenseLayer.CreateDensePooler(48, generator);
        var path = Path.Combine(dir, "dense_pooler.bin");
        pooler.SaveDensePooler(path);

        var (weight, report) = ReadWithPyTorch(path);
        Assert.Equal(["weight"], report["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        Assert.Equal("torch.float32", report["dtype"]!.GetValue<string>());
        // Stored, not deflated, as torch.save writes it (torch.load(mmap=True) needs that).
        Assert.Equal([0], report["zip_methods"]!.AsArray().Select(m => m!.GetValue<int>()));
        Assert.Equal(pooler.Weight.data<float>().ToArray(), weight);
    }

    [Fact]
    public void FreshDensePoolerIsDrawnLikeTorchLinear()
    {
        // torch.nn.Linear's default init (kaiming_uniform with a=√5) is U(-1/√d, 1/√d): std = 1/√(3d).
        const int dimension = 256;
        using var generator = new Generator(5);
        using var pooler = DenseLayer.CreateDensePooler(dimension, generator);
        var values = pooler.Weight.data<float>().ToArray();
        double bound = 1 / Math.Sqrt(dimension);
        Assert.All(values, v => Assert.InRange(v, -bound, bound));
        double std = Math.Sqrt(values.Select(v => (double)v * v).Average());
        Assert.InRange(std, 0.98 * bound / Math.Sqrt(3), 1.02 * bound / Math.Sqrt(3));
        Assert.True(pooler.IsDensePooler);
    }

    [Fact]
    public void OneStepMovesEveryDenseWeightByTheLearningRateAndTheSavedEncoderProjectsLikePyTorch()
    {
        var model = CliProcess.TinyChineseModel(dir);
        WriteReferencePooler(model, seed: 3);
        var start = ReadWithPyTorch(Path.Combine(model, SentenceEncoder.DensePoolerFile)).Weight;
        var output = Path.Combine(dir, "out");

        var result = CliProcess.Run([.. TrainArgs(model, output), "--max_steps", "1"]);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);

        // AdamW's first step with zero weight decay: Δ = -lr·g/(|g| + eps), so |Δ| = lr wherever |g| ≫ 1e-8.
        // A dense pooler left out of the optimizer (or without gradient) would not move at all.
        var trained = ReadWithPyTorch(Path.Combine(output, "encoder", SentenceEncoder.DensePoolerFile)).Weight;
        var moves = trained.Zip(start, (after, before) => Math.Abs((double)after - before) / LearningRate).ToArray();
        Assert.All(moves, m => Assert.InRange(m, 0, 1.001));
        Assert.True(moves.Count(m => m > 0.99) > 0.95 * moves.Length, $"only {moves.Count(m => m > 0.99)} of {moves.Length} weights moved by lr");

        // The saved folder reloads with its dense pooler, and encodes as PyTorch applies that file to the pooled vectors.
        var encoderDir = Path.Combine(output, "encoder");
        using var encoder = SentenceEncoder.Load(encoderDir);
        Assert.NotNull(encoder.Dense);
        string[] texts = ["今天星期几", "北京的历史很悠久", "熊猫喜欢吃竹子"];
        var pooledPath = Path.Combine(dir, "pooled.npy");
        using (no_grad())
        using (NewDisposeScope())
        {
            var batch = encoder.Tokenizer.EncodeBatch(texts, 32);
            var pooled = SentenceEncoder.Embed(encoder.Model, batch, PoolingMethod.Cls, normalize: false).contiguous().data<float>().ToArray();
            Npy.WriteFloat32(pooledPath, pooled, texts.Length, 32);
        }
        var expectedPath = Path.Combine(dir, "expected.npy");
        ReferencePython.Run("dense_pooler_reference.py", "apply", Path.Combine(encoderDir, SentenceEncoder.DensePoolerFile), pooledPath, expectedPath);
        var expected = Npy.ReadFloat32(expectedPath).Values;
        var actual = encoder.Encode(texts, EmbeddingRole.Key);
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"value {i}: {actual[i]} vs PyTorch {expected[i]}");
    }

    [Fact]
    public void UntiedEncodersShareTheQueryDensePoolerAndSaveItWithBoth()
    {
        var queryModel = CliProcess.TinyChineseModel(dir);
        WriteReferencePooler(queryModel, seed: 3);
        var keyModel = Path.Combine(dir, "key-model");
        CopyFolder(queryModel, keyModel);
        WriteReferencePooler(keyModel, seed: 9);
        var queryStart = ReadWithPyTorch(Path.Combine(queryModel, SentenceEncoder.DensePoolerFile)).Weight;
        var output = Path.Combine(dir, "untied");

        var args = TrainArgs(queryModel, output);
        args[Array.IndexOf(args, "fp32")] = "bf16";
        var result = CliProcess.Run([.. args, "--max_steps", "2", "--tie_encoders", "false", "--key_encoder", keyModel]);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);

        var queryDense = ReadWithPyTorch(Path.Combine(output, "query_encoder", SentenceEncoder.DensePoolerFile)).Weight;
        var keyDense = ReadWithPyTorch(Path.Combine(output, "key_encoder", SentenceEncoder.DensePoolerFile)).Weight;
        Assert.Equal(queryDense, keyDense);
        // Started from the query side's file (as the reference loads it from query_encoder), and trained in bf16 compute:
        // two Adam steps move each weight by at most 2·lr.
        var moves = queryDense.Zip(queryStart, (after, before) => Math.Abs((double)after - before)).ToArray();
        Assert.All(moves, m => Assert.InRange(m, 0, 2.01 * LearningRate));
        Assert.True(moves.Average() > 0.5 * LearningRate, $"mean move {moves.Average()}");
    }

    [Fact]
    public void ResumingRestoresTheDensePoolerAndItsOptimizerState()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var whole = Path.Combine(dir, "whole");
        var result = CliProcess.Run([.. TrainArgs(model, whole), "--max_steps", "6", "--save_steps", "3"]);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        Assert.Contains("the dense pooler starts from random weights", result.Stdout.Replace("\n", ""));

        var resumedDir = Path.Combine(dir, "resumed");
        var resumed = CliProcess.Run([.. TrainArgs(model, resumedDir), "--max_steps", "6", "--save_steps", "3",
            "--resume_from_checkpoint", Path.Combine(whole, "checkpoint-3")]);
        Assert.True(resumed.ExitCode == 0, resumed.Stdout + resumed.Stderr);

        var expected = TrainerState.Load(Path.Combine(whole, CheckpointFolders.TrainerStateFile)).LossHistory;
        var actual = TrainerState.Load(Path.Combine(resumedDir, CheckpointFolders.TrainerStateFile)).LossHistory;
        Assert.Equal(6, actual.Count);
        for (int i = 3; i < 6; i++)
            Assert.True(Math.Abs(expected[i].Loss - actual[i].Loss) <= 1e-5 * Math.Abs(expected[i].Loss), $"step {i + 1}: {actual[i].Loss} vs {expected[i].Loss}");
        using var wholeDense = DenseLayer.LoadDensePooler(Path.Combine(whole, "encoder", SentenceEncoder.DensePoolerFile));
        using var resumedDense = DenseLayer.LoadDensePooler(Path.Combine(resumedDir, "encoder", SentenceEncoder.DensePoolerFile));
        Assert.True(wholeDense.Weight.allclose(resumedDense.Weight, rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void DensePoolerInTheStartFolderWithoutDensePoolingIsRefused()
    {
        var model = CliProcess.TinyChineseModel(dir);
        WriteReferencePooler(model, seed: 3);
        var output = Path.Combine(dir, "refused");
        var args = TrainArgs(model, output);
        args[Array.IndexOf(args, "dense")] = "cls";

        var result = CliProcess.Run([.. args, "--max_steps", "1"]);

        Assert.NotEqual(0, result.ExitCode);
        var error = Assert.Single(result.StderrLines);
        Assert.Contains(model, error);
        Assert.Contains("add dense to --pooling_method", error);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void UnknownPoolingMethodIsRefused()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var output = Path.Combine(dir, "unknown");
        var args = TrainArgs(model, output);
        args[Array.IndexOf(args, "dense")] = "max";

        var result = CliProcess.Run([.. args, "--max_steps", "1"]);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--pooling_method 'max'", Assert.Single(result.StderrLines));
        Assert.False(Directory.Exists(output));
    }

    private string[] TrainArgs(string model, string output)
    {
        var data = Path.Combine(dir, "qa", "train.jsonl");
        if (!File.Exists(data)) TrainingDataGenerator.Write(data, rows: 48, task: "qa", seed: 5);
        return
        [
            "train", "--query_encoder", model, "--train_data", data, "--output_dir", output, "--data_root", dir,
            "--pooling_method", "cls", "dense", "--per_device_train_batch_size", "4", "--train_group_size", "4",
            "--learning_rate", LearningRate.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            "--warmup_ratio", "0", "--weight_decay", "0", "--seed", "7", "--query_max_length", "16", "--key_max_length", "24",
            "--dtype", "fp32", "--logging_steps", "1",
        ];
    }

    /// <summary>dense_pooler.bin as run_dense.py writes it (torch.save of a seeded bias-free Linear's state dict).</summary>
    private static void WriteReferencePooler(string modelDir, int seed) =>
        ReferencePython.Run("dense_pooler_reference.py", "write", Path.Combine(modelDir, SentenceEncoder.DensePoolerFile), "32", seed.ToString());

    private (float[] Weight, JsonNode Report) ReadWithPyTorch(string densePooler)
    {
        var npy = Path.Combine(dir, $"read-{Guid.NewGuid():N}.npy");
        var report = JsonNode.Parse(ReferencePython.Run("dense_pooler_reference.py", "read", densePooler, npy))!;
        return (Npy.ReadFloat32(npy).Values, report);
    }

    private static void CopyFolder(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
    }
}
