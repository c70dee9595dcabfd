# Model 1 on HSB by maximum likelihood with lme4: the call a user waits for, as a whole
# process. benchmarks/bench_startup.py times `Rscript tests/reference/hsb_1_lme4_fit.R CSV`
# beside `bayesmix fit models/hsb_1.toml --data hsb --estimator ml`, when R is installed.
#
# The model is hsb_1 of hsb_lme4.R (its logLik, -23214.495788, is in hsb_lme4.json):
# math ~ (female + ses) * (pracad + catholic + meanses) + (1 + female + ses | school), ML.

suppressPackageStartupMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
csv_path <- if (length(args) >= 1) args[[1]] else "../shared/data/hsb.csv"
hsb <- read.csv(csv_path, colClasses = c(school = "character"))
fit <- lmer(
  math ~ (female + ses) * (pracad + catholic + meanses) + (1 + female + ses | school),
  data = hsb, REML = FALSE
)
print(summary(fit))
cat(sprintf("logLik %.6f\n", as.numeric(logLik(fit))))
