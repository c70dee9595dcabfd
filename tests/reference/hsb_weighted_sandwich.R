# Weighted least squares with cluster-robust (sandwich) standard errors on HSB, as reference
# figures for bayesmix's pseudo-ML fit of a single-level regression with student sampling
# weights and a cluster column (Mplus WEIGHT with TYPE = COMPLEX, estimator MLR).
#
# The weights are a deterministic function of the data, wt = 1 + female + 0.5 minority.
# For a normal regression the weighted pseudo-ML coefficients are the weighted least-squares
# ones, and their sandwich A^-1 B A^-1 is sandwich::vcovCL of the weighted lm, type "HC0",
# with the school's summed scores in the meat and cadjust = TRUE (G / (G - 1), as Mplus). The
# weights' overall scale changes neither.
#
# Run from the repository root:
#   Rscript tests/reference/hsb_weighted_sandwich.R ../shared/data/hsb.csv \
#     tests/reference/hsb_weighted_sandwich.json

suppressPackageStartupMessages({
  library(sandwich)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
csv_path <- if (length(args) >= 1) args[[1]] else "../shared/data/hsb.csv"
out_path <- if (length(args) >= 2) args[[2]] else "tests/reference/hsb_weighted_sandwich.json"
hsb <- read.csv(csv_path, colClasses = c(school = "character"))
hsb$wt <- 1 + hsb$female + 0.5 * hsb$minority

fit <- lm(math ~ female + ses + catholic, data = hsb, weights = wt)
adjusted <- vcovCL(fit, cluster = ~school, type = "HC0", cadjust = TRUE)
names_bm <- sub("^\\(Intercept\\)$", "1", names(coef(fit)))

result <- list(
  description = paste(
    "Weighted lm(math ~ female + ses + catholic, weights = 1 + female + 0.5 minority) on HSB,",
    "sandwich::vcovCL(cluster = ~school, type = 'HC0', cadjust = TRUE); made by",
    "tests/reference/hsb_weighted_sandwich.R."
  ),
  command = paste("Rscript tests/reference/hsb_weighted_sandwich.R", csv_path, out_path),
  versions = list(
    R = R.version.string,
    sandwich = as.character(packageVersion("sandwich")),
    jsonlite = as.character(packageVersion("jsonlite"))
  ),
  n_obs = nobs(fit),
  n_clusters = length(unique(hsb$school)),
  names = names_bm,
  estimates = unname(coef(fit)),
  sigma2_pseudo_ml = sum(hsb$wt * residuals(fit)^2) / sum(hsb$wt),
  se_cadjust = unname(sqrt(diag(adjusted)))
)
write_json(result, out_path, digits = NA, pretty = TRUE, auto_unbox = TRUE)
cat(sprintf("wrote %s\n", out_path))
