// SPDX-License-Identifier: MIT
/*
 * mmn-bench: the scaling plot, written by hand as SVG. Latency against device
 * count, both axes logarithmic (so N x latency is a straight line and
 * one latency a flat one), the median of each mode as a solid line with
 * markers, its 99th percentile dashed, and the two ideal references dotted.
 */
#include <math.h>
#include <stdio.h>

#include "bench.h"

#define W 780
#define H 500
#define LEFT 90
#define RIGHT 30
#define TOP 60
#define BOTTOM 70

struct axes {
	double xmin, xmax;		/* log2 of device counts */
	double ymin, ymax;		/* log10 of microseconds */
};

static double px(const struct axes *a, double devices)
{
	double span = a->xmax - a->xmin;

	return LEFT + (log2(devices) - a->xmin) / span * (W - LEFT - RIGHT);
}

static double py(const struct axes *a, double us)
{
	return H - BOTTOM - (log10(us) - a->ymin) / (a->ymax - a->ymin) * (H - TOP - BOTTOM);
}

static void text_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

static void polyline(FILE *f, const struct axes *a, const unsigned int *devices,
		     const double *v, unsigned int n, const char *color, const char *extra)
{
	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" %s points=\"",
		color, extra);
	for (unsigned int i = 0; i < n; i++)
		fprintf(f, "%s%.1f,%.1f", i ? " " : "", px(a, devices[i]), py(a, v[i]));
	fputs("\"/>\n", f);
}

/* A dotted reference from (x0, y0) to (x1, y1), clipped to the plot area. */
static void reference(FILE *f, const struct axes *a, double d0, double us0, double d1,
		      double us1, const char *label)
{
	double ylo = pow(10, a->ymin), yhi = pow(10, a->ymax);
	double slope = (log10(us1) - log10(us0)) / (log2(d1) - log2(d0));

	/* Clip the end that leaves the top (only N x latency can). */
	if (us1 > yhi && slope > 0) {
		d1 = pow(2, log2(d0) + (log10(yhi) - log10(us0)) / slope);
		us1 = yhi;
	}
	if (us0 < ylo || us0 > yhi)
		return;
	fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" "
		"stroke-width=\"1.2\" stroke-dasharray=\"2,4\"/>\n",
		px(a, d0), py(a, us0), px(a, d1), py(a, us1));
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#666\" text-anchor=\"end\">",
		px(a, d1) - 4, py(a, us1) + 15);
	text_escaped(f, label);
	fputs("</text>\n", f);
}

int bench_plot_svg(const char *path, const char *title, const char *xlabel,
		   const unsigned int *devices, unsigned int n,
		   const struct plot_series *series, unsigned int nr_series, double latency_us)
{
	double lo = latency_us > 0 ? latency_us : 1e9, hi = latency_us;
	struct axes a;
	FILE *f;
	int ok;

	if (!n)
		return -1;
	for (unsigned int s = 0; s < nr_series; s++)
		for (unsigned int i = 0; i < n; i++) {
			if (series[s].p50[i] > 0 && series[s].p50[i] < lo)
				lo = series[s].p50[i];
			if (series[s].p99[i] > hi)
				hi = series[s].p99[i];
		}
	if (lo <= 0 || lo > hi)
		lo = 1;
	a.ymin = floor(log10(lo * 0.9));
	a.ymax = ceil(log10(hi * 1.1));
	if (a.ymax <= a.ymin)
		a.ymax = a.ymin + 1;
	a.xmin = log2(devices[0]);
	a.xmax = log2(devices[n - 1]);
	if (a.xmax <= a.xmin) {
		a.xmin -= 1;
		a.xmax += 1;
	}

	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", W, H, W, H);
	fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
	fprintf(f, "<text x=\"%d\" y=\"28\" font-size=\"15\" text-anchor=\"middle\">", W / 2);
	text_escaped(f, title);
	fputs("</text>\n", f);

	/* Grid and y ticks: 1, 2, 5 per decade. */
	for (double d = a.ymin; d < a.ymax + 0.5; d++) {
		static const double steps[] = { 1, 2, 5 };

		for (unsigned int k = 0; k < 3; k++) {
			double us = steps[k] * pow(10, d);

			if (log10(us) > a.ymax + 1e-9)
				break;
			fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\"/>\n",
				LEFT, py(&a, us), W - RIGHT, py(&a, us), k ? "#f0f0f0" : "#d8d8d8");
			fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">%g</text>\n",
				LEFT - 8, py(&a, us) + 4, us);
		}
	}
	/* x ticks at the measured device counts. */
	for (unsigned int i = 0; i < n; i++) {
		double x = px(&a, devices[i]);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#f0f0f0\"/>\n",
			x, TOP, x, H - BOTTOM);
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%u</text>\n",
			x, H - BOTTOM + 18, devices[i]);
	}
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n",
		LEFT, TOP, W - LEFT - RIGHT, H - TOP - BOTTOM);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">",
		LEFT + (W - LEFT - RIGHT) / 2, H - 22);
	text_escaped(f, xlabel);
	fputs("</text>\n", f);
	fprintf(f, "<text x=\"22\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\" "
		"transform=\"rotate(-90 22 %d)\">invalidation latency, us (log scale)</text>\n",
		TOP + (H - TOP - BOTTOM) / 2, TOP + (H - TOP - BOTTOM) / 2);

	if (latency_us > 0) {
		char label[64];

		snprintf(label, sizeof(label), "N x %g us", latency_us);
		reference(f, &a, devices[0], devices[0] * latency_us, devices[n - 1],
			  devices[n - 1] * latency_us, label);
		snprintf(label, sizeof(label), "one device latency (%g us)", latency_us);
		reference(f, &a, devices[0], latency_us, devices[n - 1], latency_us, label);
	}

	for (unsigned int s = 0; s < nr_series; s++) {
		polyline(f, &a, devices, series[s].p99, n, series[s].color,
			 "stroke-dasharray=\"6,4\" opacity=\"0.6\"");
		polyline(f, &a, devices, series[s].p50, n, series[s].color, "");
		for (unsigned int i = 0; i < n; i++)
			fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
				px(&a, devices[i]), py(&a, series[s].p50[i]), series[s].color);
	}

	/* Legend, top left inside the plot. */
	fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"200\" height=\"%u\" fill=\"white\" "
		"stroke=\"#bbb\"/>\n", LEFT + 12, TOP + 10, 14 + 36 * nr_series);
	for (unsigned int s = 0; s < nr_series; s++) {
		int y = TOP + 28 + 36 * (int)s;

		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n",
			LEFT + 22, y, LEFT + 52, y, series[s].color);
		fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"3.5\" fill=\"%s\"/>\n", LEFT + 37, y,
			series[s].color);
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">", LEFT + 60, y + 4);
		text_escaped(f, series[s].label);
		fputs(" (median)</text>\n", f);
		fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\" "
			"stroke-dasharray=\"6,4\" opacity=\"0.6\"/>\n",
			LEFT + 22, y + 16, LEFT + 52, y + 16, series[s].color);
		fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\">", LEFT + 60, y + 20);
		text_escaped(f, series[s].label);
		fputs(" (p99)</text>\n", f);
	}
	fputs("</svg>\n", f);
	ok = !ferror(f);
	return fclose(f) == 0 && ok ? 0 : -1;
}
