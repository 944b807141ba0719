namespace LlmEmbedder.Retrieval;

/// <summary>Charts of evaluation results (PNG, ScottPlot).</summary>
public static class Charts
{
    /// <summary>
    /// Grouped bars: one group per metric (in <see cref="RetrievalMetrics.KeyOrder"/>), one bar per model, so two
    /// models can be compared at a glance. Metrics missing from a model are drawn as gaps.
    /// </summary>
    public static void SaveMetricComparison(string path, IReadOnlyList<(string Label, IReadOnlyDictionary<string, double> Metrics)> models)
    {
        if (models.Count == 0) throw new ArgumentException("no models to chart", nameof(models));
        var metricNames = models.SelectMany(m => m.Metrics.Keys).Distinct().Order(RetrievalMetrics.KeyOrder).ToArray();
        var plot = new ScottPlot.Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int groupWidth = models.Count + 1;
        for (int s = 0; s < models.Count; s++)
        {
            var color = palette.GetColor(s);
            var bars = new List<ScottPlot.Bar>();
            for (int m = 0; m < metricNames.Length; m++)
            {
                if (!models[s].Metrics.TryGetValue(metricNames[m], out var value)) continue;
                bars.Add(new ScottPlot.Bar
                {
                    Position = m * groupWidth + s,
                    Value = value,
                    FillColor = color,
                    Label = value.ToString("F3", System.Globalization.CultureInfo.InvariantCulture),
                });
            }
            var series = plot.Add.Bars(bars);
            series.ValueLabelStyle.FontSize = 9;
            series.LegendText = models[s].Label;
        }
        double[] centers = metricNames.Select((_, m) => m * groupWidth + (models.Count - 1) / 2.0).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(centers, metricNames);
        plot.Axes.Left.Label.Text = "score";
        plot.Axes.SetLimits(-1, metricNames.Length * groupWidth - 1, 0, 1.12);
        plot.Title("Retrieval metrics");
        // Outside the data area, so it never hides a bar.
        plot.ShowLegend(ScottPlot.Edge.Bottom);
        int width = Math.Max(700, 45 * metricNames.Length * groupWidth);
        FileUtil.WriteAtomic(path, stream => stream.Write(plot.GetImageBytes(width, 500, ScottPlot.ImageFormat.Png)));
    }
}
