/** A self-contained SVG loss curve (train and validation loss against step). */
export function lossSvg(train: Array<[number, number]>, val: Array<[number, number]>, title = 'gpt-native training loss'): string {
  const W = 720, H = 400, L = 60, R = 20, T = 40, Bm = 50;
  const all = [...train, ...val];
  if (all.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="20" y="40">no data yet</text></svg>\n`;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]).filter(Number.isFinite);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-6) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - Bm);
  const line = (pts: Array<[number, number]>) => pts.filter((p) => Number.isFinite(p[1])).map((p, i) => `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' ');
  const ticks: string[] = [];
  for (let i = 0; i <= 5; i++) {
    const y = y0 + ((y1 - y0) * i) / 5;
    ticks.push(`<line x1="${L}" x2="${W - R}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#eee"/><text x="${L - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end" font-size="11">${y.toFixed(2)}</text>`);
    const x = x0 + ((x1 - x0) * i) / 5;
    ticks.push(`<text x="${sx(x).toFixed(1)}" y="${H - Bm + 18}" text-anchor="middle" font-size="11">${Math.round(x)}</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${title}</text>
${ticks.join('\n')}
<line x1="${L}" y1="${H - Bm}" x2="${W - R}" y2="${H - Bm}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - Bm}" stroke="#333"/>
<text x="${W / 2}" y="${H - 12}" text-anchor="middle" font-size="12">step</text>
<text x="16" y="${H / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${H / 2})">loss (nats)</text>
<path d="${line(train)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
<path d="${line(val)}" fill="none" stroke="#d62728" stroke-width="2"/>
<text x="${W - R - 150}" y="${T + 14}" font-size="12" fill="#1f77b4">train</text><text x="${W - R - 100}" y="${T + 14}" font-size="12" fill="#d62728">validation</text>
</svg>
`;
}
