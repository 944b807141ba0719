using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Training;

/// <summary>loss.png in output_dir: the per-step loss, its moving average and the learning rate.</summary>
public static class LossCurve
{
    public static void Save(string path, IReadOnlyList<LossPoint> history)
    {
        if (history.Count == 0) return;
        var plot = new ScottPlot.Plot();
        double[] steps = history.Select(p => (double)p.Step).ToArray();
        double[] losses = history.Select(p => p.Loss).ToArray();
        var raw = plot.Add.Scatter(steps, losses);
        raw.LegendText = "loss";
        raw.MarkerSize = 0;
        raw.LineWidth = 1;
        raw.Color = raw.Color.WithAlpha(0.35);

        int window = Math.Max(1, history.Count / 20);
        double[] smoothed = losses.Select((_, i) => losses.Skip(Math.Max(0, i - window + 1)).Take(Math.Min(window, i + 1)).Average()).ToArray();
        var average = plot.Add.Scatter(steps, smoothed);
        average.LegendText = $"loss, mean of {window}";
        average.MarkerSize = 0;
        average.LineWidth = 2;

        var rate = plot.Add.Scatter(steps, history.Select(p => p.LearningRate).ToArray());
        rate.LegendText = "learning rate";
        rate.MarkerSize = 0;
        rate.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "learning rate";
        plot.Axes.Left.Label.Text = "loss";
        plot.Axes.Bottom.Label.Text = "step";
        plot.Title("Training loss");
        plot.ShowLegend();
        FileUtil.WriteAtomic(path, stream =>
        {
            var bytes = plot.GetImageBytes(900, 500, ScottPlot.ImageFormat.Png);
            stream.Write(bytes);
        });
    }
}
