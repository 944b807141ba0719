using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlmEmbedder.Training.Optimization;

/// <summary>
/// AdamW as the Hugging Face Trainer builds it: weight decay on every parameter except biases and
/// LayerNorm weights; betas (0.9, 0.999), eps 1e-8.
/// </summary>
public static class AdamWWithDecayGroups
{
    public static bool DecayApplies(string parameterName) =>
        !parameterName.EndsWith("bias", StringComparison.Ordinal) && !parameterName.Contains("LayerNorm", StringComparison.Ordinal);

    public static AdamW Create(IEnumerable<(string Name, Parameter Parameter)> parameters, double learningRate, double weightDecay)
    {
        var all = parameters.ToList();
        var groups = new List<AdamW.ParamGroup>
        {
            new(all.Where(p => DecayApplies(p.Name)).Select(p => p.Parameter), lr: learningRate, weight_decay: weightDecay),
            new(all.Where(p => !DecayApplies(p.Name)).Select(p => p.Parameter), lr: learningRate, weight_decay: 0.0),
        };
        return optim.AdamW(groups, lr: learningRate, weight_decay: weightDecay);
    }
}
