using LlmEmbedder.Retrieval;
using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Training;

/// <summary>The loss of one dataset's steps (or of every step, when batches mix datasets) and its moving mean.</summary>
public sealed record LossSeries(string Name, double[] Steps, double[] Losses, double[] MovingMean, int Window);

/// <summary>One evaluation metric over the steps it was measured at.</summary>
public sealed record MetricSeries(string Name, double[] Steps, double[] Values);

/// <summary>
/// loss.png in output_dir: per dataset, the per-step loss (faint) and its moving mean, the learning rate on the right
/// axis; below, when the run evaluated, the main evaluation metric over steps. Legends sit outside the curves.
/// </summary>
public static class LossCurve
{
    private const int Width = 1000, LossHeight = 500, MetricHeight = 280;

    // Room around the data area for the axes and the legend, the same in both panels so their steps line up.
    private static readonly ScottPlot.PixelPadding Padding = new(left: 80, right: 230, bottom: 50, top: 40);

    /// <summary>
    /// The loss curves: one per dataset a step's batch came from (named as in <paramref name="datasetNames"/>), in
    /// dataset order, then one of the steps that mixed datasets; a single curve of all steps is named "loss".
    /// </summary>
    public static IReadOnlyList<LossSeries> Series(IReadOnlyList<LossPoint> history, IReadOnlyList<string> datasetNames)
    {
        var groups = history.GroupBy(p => p.Dataset).OrderBy(g => g.Key ?? int.MaxValue).ToList();
        return groups.Select(group =>
        {
            var points = group.ToList();
            string name = groups.Count == 1 && (group.Key is null || datasetNames.Count <= 1) ? "loss"
                : group.Key is not { } index ? "mixed batches"
                : index < datasetNames.Count ? datasetNames[index] : $"dataset {index}";
            double[] losses = points.Select(p => p.Loss).ToArray();
            int window = Math.Max(1, points.Count / 20);
            return new LossSeries(name, points.Select(p => (double)p.Step).ToArray(), losses, MovingMean(losses, window), window);
        }).ToList();
    }

    /// <summary>The mean of each value and the up to <paramref name="window"/> − 1 before it.</summary>
    public static double[] MovingMean(IReadOnlyList<double> values, int window) =>
        values.Select((_, i) => values.Skip(Math.Max(0, i - window + 1)).Take(Math.Min(window, i + 1)).Average()).ToArray();

    /// <summary>The metric the curve shows (<see cref="RetrievalMetrics.MainMetric"/>); null without evaluations.</summary>
    public static MetricSeries? MainMetric(IReadOnlyList<(int Step, IReadOnlyDictionary<string, double> Metrics)> evaluations)
    {
        if (evaluations.Count == 0) return null;
        string? name = RetrievalMetrics.MainMetric(evaluations[0].Metrics.Keys.ToList());
        if (name is null) return null;
        var measured = evaluations.Where(e => e.Metrics.ContainsKey(name)).ToList();
        return new MetricSeries(name, measured.Select(e => (double)e.Step).ToArray(), measured.Select(e => e.Metrics[name]).ToArray());
    }

    public static void Save(string path, IReadOnlyList<LossPoint> history, IReadOnlyList<string> datasetNames,
        IReadOnlyList<(int Step, IReadOnlyDictionary<string, double> Metrics)> evaluations)
    {
        if (history.Count == 0) return;
        var lossPlot = LossPlot(history, datasetNames);
        var metric = MainMetric(evaluations);
        byte[] png;
        if (metric is null)
        {
            png = lossPlot.GetImageBytes(Width, LossHeight, ScottPlot.ImageFormat.Png);
        }
        else
        {
            var metricPlot = MetricPlot(metric);
            // The same step range in both panels, so an evaluation sits under the loss of its step.
            var steps = lossPlot.Axes.GetLimits();
            double first = Math.Min(steps.Left, metric.Steps.Min()), last = Math.Max(steps.Right, metric.Steps.Max());
            lossPlot.Axes.SetLimitsX(first, last);
            metricPlot.Axes.SetLimitsX(first, last);
            png = Stack(lossPlot, metricPlot);
        }
        FileUtil.WriteAtomic(path, stream => stream.Write(png));
    }

    private static ScottPlot.Plot LossPlot(IReadOnlyList<LossPoint> history, IReadOnlyList<string> datasetNames)
    {
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var series = Series(history, datasetNames);
        for (int i = 0; i < series.Count; i++)
        {
            var color = palette.GetColor(i);
            var raw = plot.Add.ScatterLine(series[i].Steps, series[i].Losses, color.WithAlpha(0.25));
            raw.LineWidth = 1;
            var mean = plot.Add.ScatterLine(series[i].Steps, series[i].MovingMean, color);
            mean.LineWidth = 2;
            mean.LegendText = series[i].Window > 1 ? $"{series[i].Name} (mean of {series[i].Window})" : series[i].Name;
        }
        var rate = plot.Add.ScatterLine(history.Select(p => (double)p.Step).ToArray(), history.Select(p => p.LearningRate).ToArray(),
            ScottPlot.Colors.Gray);
        rate.LinePattern = ScottPlot.LinePattern.Dashed;
        rate.LegendText = "learning rate";
        rate.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "learning rate";
        plot.Axes.Left.Label.Text = "loss (faint: each step)";
        plot.Axes.Bottom.Label.Text = "step";
        plot.Title("Training loss");
        Finish(plot);
        return plot;
    }

    private static ScottPlot.Plot MetricPlot(MetricSeries metric)
    {
        var plot = new ScottPlot.Plot();
        var line = plot.Add.Scatter(metric.Steps, metric.Values, ScottPlot.Colors.DarkGreen);
        line.LineWidth = 2;
        line.MarkerSize = 7;
        line.LegendText = metric.Name;
        plot.Axes.Left.Label.Text = metric.Name;
        plot.Axes.Bottom.Label.Text = "step";
        plot.Title("Evaluation");
        Finish(plot);
        return plot;
    }

    private static void Finish(ScottPlot.Plot plot)
    {
        plot.ShowLegend(ScottPlot.Edge.Right);
        plot.Layout.Fixed(Padding);
    }

    /// <summary>The two panels one above the other in one PNG.</summary>
    private static byte[] Stack(ScottPlot.Plot top, ScottPlot.Plot bottom)
    {
        using var surface = SkiaSharp.SKSurface.Create(new SkiaSharp.SKImageInfo(Width, LossHeight + MetricHeight));
        // Each panel is drawn whole on its own (a plot rendered into part of a canvas repaints all of it).
        using var topImage = SkiaSharp.SKImage.FromEncodedData(top.GetImageBytes(Width, LossHeight, ScottPlot.ImageFormat.Png));
        using var bottomImage = SkiaSharp.SKImage.FromEncodedData(bottom.GetImageBytes(Width, MetricHeight, ScottPlot.ImageFormat.Png));
        surface.Canvas.DrawImage(topImage, 0, 0);
        surface.Canvas.DrawImage(bottomImage, 0, LossHeight);
        using var image = surface.Snapshot();
        using var data = image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
