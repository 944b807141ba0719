using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tokenization;
using static TorchSharp.torch;

namespace LlmEmbedder.Modeling;

/// <summary>
/// A model folder with freshly initialised weights (Hugging Face's init, seeded): for the embedded default
/// run and for tests that need the exact shape of a model whose weights are not available here.
/// </summary>
public static class RandomModelFolder
{
    /// <param name="configPath">A BERT config.json</param>
    /// <param name="tokenizerDir">A folder with vocab.txt (+ tokenizer_config.json) or tokenizer.json</param>
    public static void Create(string configPath, string tokenizerDir, string outputDir, long seed)
    {
        var config = BertConfig.Load(configPath);
        var tokenizer = BertTokenizer.FromDirectory(tokenizerDir);
        if (tokenizer.VocabSize > config.VocabSize)
            throw new EmbedderException($"{configPath}: vocab_size {config.VocabSize} is smaller than the tokenizer's {tokenizer.VocabSize} tokens");
        AtomicFolder.Publish(outputDir, staging =>
        {
            using (var model = new BertModel(config))
            {
                model.InitializeRandomWeights(new Generator((ulong)seed));
                config.Save(Path.Combine(staging, "config.json"));
                WeightFiles.SaveSafetensors(staging, model.state_dict());
            }
            tokenizer.Save(staging);
        });
    }
}
