//! Headless Chromium (Debian's package, installed by `scripts/chromium.sh`) for screenshots of
//! the HTML report, and the pixel check that its charts rendered.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

fn chromium() -> anyhow::Result<&'static str> {
    static CHROMIUM: OnceLock<Result<String, String>> = OnceLock::new();
    let found = CHROMIUM.get_or_init(|| crate::install("scripts/chromium.sh"));
    found.as_deref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Opens `html` in headless Chromium with a window of `width` × `height` CSS pixels and saves
/// what it shows as PNG to `png`.
pub fn screenshot(html: &Path, png: &Path, width: u32, height: u32) -> anyhow::Result<()> {
    let profile = tempfile::tempdir()?;
    let out = Command::new(chromium()?)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .context("running chromium")?;
    if !out.status.success() || !png.exists() {
        bail!(
            "chromium made no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// An RGB image.
#[derive(Debug)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// Row by row, 3 bytes a pixel.
    pub rgb: Vec<u8>,
}

impl Image {
    /// Reads an 8-bit PNG (RGB or RGBA, as Chromium writes them).
    pub fn read_png(path: &Path) -> anyhow::Result<Image> {
        let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info()?;
        let mut buf = vec![0; reader.output_buffer_size().context("image too large")?];
        let info = reader.next_frame(&mut buf)?;
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => bail!("{} is {other:?}, not RGB", path.display()),
        };
        let rgb = buf[..info.buffer_size()]
            .chunks(channels)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Ok(Image {
            width: info.width as usize,
            height: info.height as usize,
            rgb,
        })
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// One chart's plot area found in a screenshot, and how many pixels of its line it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartRegion {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
    pub line_pixels: usize,
}

fn hex(colour: &str) -> [u8; 3] {
    let channel = |i: usize| u8::from_str_radix(&colour[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0);
    [channel(0), channel(1), channel(2)]
}

fn near(p: [u8; 3], c: [u8; 3], tolerance: u8) -> bool {
    p.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= tolerance)
}

/// Rows without the plot's background that a plot area may hold (its line or the zero line
/// drawn across it); plot areas on the page are further apart than this.
const GAP_ROWS: usize = 8;

/// The plot areas in `image`: bands of rows holding at least 100 pixels of `background` (charts
/// are stacked, one per band), each with the pixels near `line` inside its box.
pub fn chart_regions(image: &Image, background: &str, line: &str) -> Vec<ChartRegion> {
    let (bg, line) = (hex(background), hex(line));
    let mut regions: Vec<ChartRegion> = Vec::new();
    for y in 0..image.height {
        let xs: Vec<usize> = (0..image.width)
            .filter(|&x| near(image.pixel(x, y), bg, 2))
            .collect();
        if xs.len() < 100 {
            continue;
        }
        let (l, r) = (xs[0], xs[xs.len() - 1]);
        match regions.last_mut() {
            Some(region) if y - region.bottom <= GAP_ROWS => {
                region.bottom = y;
                region.left = region.left.min(l);
                region.right = region.right.max(r);
            }
            _ => regions.push(ChartRegion {
                top: y,
                bottom: y,
                left: l,
                right: r,
                line_pixels: 0,
            }),
        }
    }
    for r in &mut regions {
        r.line_pixels = (r.top..=r.bottom)
            .flat_map(|y| (r.left..=r.right).map(move |x| (x, y)))
            .filter(|&(x, y)| near(image.pixel(x, y), line, 40))
            .count();
    }
    regions
}
