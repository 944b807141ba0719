using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tokenization;
using Microsoft.ML.OnnxRuntime;

namespace LlmEmbedder.Tests.Export;

/// <summary>
/// What the ONNX export tests share: running export --onnx, the onnx package's checker on a written file, and
/// running an exported graph with ONNX Runtime directly (its own session, not the library's backend).
/// </summary>
internal static class OnnxExportChecks
{
    public const double Tolerance = 1e-4;

    /// <summary>
    /// Mixed lengths for padded batches: a row cut at 512 tokens, an empty one, English, Chinese, accents; in batches
    /// of <see cref="BatchSize"/> every batch pads some rows heavily.
    /// </summary>
    public static readonly string[] Texts =
    [
        string.Join(" ", Enumerable.Range(0, 700).Select(i => $"w{i}")),
        "Hello world!",
        "",
        "A short query about retrieval augmented generation?",
        string.Join(" ", Enumerable.Repeat("The quick brown fox jumps over the lazy dog, again and again.", 60)),
        "Snowflake's arctic-embed and MiniLM are BERT models with 6 layers; café naïve résumé.",
        "北京是中国的首都。",
        "ok",
    ];

    public const int BatchSize = 4;

    /// <summary>Runs export with <paramref name="flags"/> into <paramref name="outputDir"/>; fails the test unless it exits 0.</summary>
    public static CliProcess.Result Export(string encoder, string outputDir, params string[] flags)
    {
        var result = CliProcess.Run(["export", "--encoder", encoder, "--output_dir", outputDir, .. flags]);
        Assert.True(result.ExitCode == 0, $"export failed ({result.ExitCode}): {result.Stderr}");
        return result;
    }

    /// <summary>onnx.checker.check_model(path, full_check=True) must pass; returns what tests/reference/onnx_check.py reports.</summary>
    public static JsonObject Check(string onnxPath) =>
        JsonNode.Parse(ReferencePython.Run("onnx_check.py", onnxPath))!.AsObject();

    /// <summary>Opset, inputs and outputs as sentence-transformers' ONNX backend and our backend expect them.</summary>
    public static void AssertInterface(JsonObject check, int hidden, int dimension)
    {
        Assert.True(check["opset"]!["ai.onnx"]!.GetValue<int>() >= 17, check.ToJsonString());
        foreach (var input in new[] { "input_ids", "attention_mask", "token_type_ids" })
        {
            Assert.Equal(7, check["inputs"]![input]!["elem_type"]!.GetValue<int>()); // int64
            Assert.Equal("[\"batch\",\"sequence\"]", check["inputs"]![input]!["dims"]!.ToJsonString());
        }
        Assert.Equal($"[\"batch\",\"sequence\",{hidden}]", check["outputs"]!["last_hidden_state"]!["dims"]!.ToJsonString());
        Assert.Equal($"[\"batch\",{dimension}]", check["outputs"]!["sentence_embedding"]!["dims"]!.ToJsonString());
    }

    /// <summary>The exported graph's two outputs for one batch, from a plain ONNX Runtime session on 2 threads.</summary>
    public static (float[] LastHiddenState, float[] SentenceEmbedding) Run(string onnxPath, TokenBatch batch)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1 };
        using var session = new InferenceSession(onnxPath, options);
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        using var ids = OrtValue.CreateTensorValueFromMemory(batch.InputIds, shape);
        using var mask = OrtValue.CreateTensorValueFromMemory(batch.AttentionMask, shape);
        using var types = OrtValue.CreateTensorValueFromMemory(new long[batch.InputIds.Length], shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["input_ids", "attention_mask", "token_type_ids"], [ids, mask, types],
            ["last_hidden_state", "sentence_embedding"]);
        return (outputs[0].GetTensorDataAsSpan<float>().ToArray(), outputs[1].GetTensorDataAsSpan<float>().ToArray());
    }

    /// <summary>Max |a − b| over the hidden vectors of real (not padding) tokens.</summary>
    public static double MaxAbsOnRealTokens(float[] a, float[] b, long[] attentionMask, int hidden)
    {
        Assert.Equal(a.Length, b.Length);
        double worst = 0;
        for (int token = 0; token < attentionMask.Length; token++)
        {
            if (attentionMask[token] == 0) continue;
            for (int d = 0; d < hidden; d++) worst = Math.Max(worst, Math.Abs((double)a[(long)token * hidden + d] - b[(long)token * hidden + d]));
        }
        return worst;
    }
}
