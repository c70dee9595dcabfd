# Reference figures for the HSB models, fitted by maximum likelihood in R (lme4 and nlme).
#
# Usage (from the repository root):
#   Rscript tests/reference/hsb_lme4.R [HSB_CSV] [OUT_JSON]
# Defaults: HSB_CSV = "../shared/data/hsb.csv", OUT_JSON = "tests/reference/hsb_lme4.json".
#
# No variable is centred; every column is used as given in the CSV. All fits are ML (REML = FALSE).
# Numbers are written at full double precision (jsonlite digits = NA); logLik is also written as
# a string with sprintf("%.6f").
#
# Because several of these likelihoods have their maximum on a boundary (a singular random-effect
# covariance matrix), the script does not trust a single optimiser run:
# * lme4 models are fitted with the default optimiser (the call as written) and refitted with
#   bobyqa and Nelder_Mead. The top-level figures are those of the default call unless another
#   optimiser finds a log-likelihood higher by more than 0.001; then they are the best fit's, and
#   the default fit is kept under "optimizer_checks".
# * nlme models (hsb_1c, hsb_1b) are fitted with the specified control (hsb_1c:
#   lmeControl(maxIter=200, msMaxIter=200, opt="optim"); hsb_1b: the defaults, then that optim
#   control) and with an nlminb control that runs more EM and optimiser iterations. As a check on both, the same
#   likelihood is maximised with lme4 by profiling: for fixed variance-function parameters the
#   residual variance is sigma^2 / w_ij with known weights w_ij, which lmer fits exactly (its
#   weighted log-likelihood is on the same scale as nlme's; the script verifies this on a
#   random-intercept model), and the variance-function parameters are then optimised outside.
#   The top-level figures of these models come from whichever of these fits has the highest
#   log-likelihood; every fit is kept under "fits".

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
csv_path <- if (length(args) >= 1) args[[1]] else "../shared/data/hsb.csv"
out_path <- if (length(args) >= 2) args[[2]] else "tests/reference/hsb_lme4.json"

hsb <- read.csv(csv_path, colClasses = c(school = "character"))
hsb$school <- factor(hsb$school)
stopifnot(nrow(hsb) == 7185, nlevels(hsb$school) == 160)
n_obs <- nrow(hsb)

versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  nlme = as.character(packageVersion("nlme")),
  Matrix = as.character(packageVersion("Matrix")),
  jsonlite = as.character(packageVersion("jsonlite"))
)

design_md <- list(
  hsb_1 = list(logLik = -23214.496, n_params = 19L, BIC = 46597.707, elapsed_s = 0.81,
               source = "DESIGN.md, lme4 1.1-31"),
  hsb_ri = list(logLik = -23243.163, n_params = 8L, source = "DESIGN.md, lme4 1.1-31")
)

# Run `expr`, collecting warnings and messages (recorded, not dropped) and the elapsed time.
# Errors are caught and returned.
timed_fit <- function(expr) {
  warns <- character(0)
  msgs <- character(0)
  err <- NULL
  fit <- NULL
  tm <- system.time(
    fit <- tryCatch(
      withCallingHandlers(expr,
        warning = function(w) {
          warns <<- c(warns, conditionMessage(w))
          invokeRestart("muffleWarning")
        },
        message = function(m) {
          msgs <<- c(msgs, trimws(conditionMessage(m)))
          invokeRestart("muffleMessage")
        }),
      error = function(e) {
        err <<- conditionMessage(e)
        NULL
      })
  )
  list(fit = fit, warnings = unique(warns), messages = unique(msgs), error = err,
       elapsed_s = unname(tm[["elapsed"]]))
}

# Project-style names: var(u_1), var(u_x), cov(u_1,u_x), sigma2.
u_name <- function(v) if (v == "(Intercept)") "u_1" else paste0("u_", v)

fixed_table <- function(tab) {
  lapply(seq_len(nrow(tab)), function(i)
    list(name = rownames(tab)[i], estimate = unname(tab[i, 1]), se = unname(tab[i, 2])))
}

ll_fields <- function(ll, df) {
  ll <- as.numeric(ll)
  list(logLik = ll, logLik_text = sprintf("%.6f", ll), n_params = as.integer(df),
       BIC = -2 * ll + df * log(n_obs), AIC = -2 * ll + 2 * df, n_obs = n_obs)
}

ll_info <- function(fit) {
  ll <- logLik(fit)
  out <- ll_fields(ll, attr(ll, "df"))
  stopifnot(abs(out$BIC - BIC(fit)) < 1e-6, abs(out$AIC - AIC(fit)) < 1e-6)
  out
}

# Random-effect covariance matrix -> list of components (variances then covariances).
cov_components <- function(V) {
  nm <- colnames(V)
  out <- list()
  for (i in seq_along(nm)) {
    out[[length(out) + 1]] <- list(name = sprintf("var(%s)", u_name(nm[i])),
                                   term = nm[i], estimate = unname(V[i, i]))
  }
  if (length(nm) > 1) {
    for (i in 1:(length(nm) - 1)) for (j in (i + 1):length(nm)) {
      out[[length(out) + 1]] <- list(name = sprintf("cov(%s,%s)", u_name(nm[i]), u_name(nm[j])),
                                     term = paste(nm[i], nm[j], sep = ","),
                                     estimate = unname(V[i, j]))
    }
  }
  out
}

corr_rows <- function(V) {
  if (ncol(V) < 2) return(NULL)
  C <- suppressWarnings(cov2cor(V))
  lapply(seq_len(ncol(C)), function(i) unname(C[i, ]))
}

# ---------------------------------------------------------------------------------------- lme4
lmer_details <- function(fit) {
  V <- VarCorr(fit)$school
  V <- matrix(as.numeric(V), nrow(V), dimnames = dimnames(V))
  conv_msgs <- fit@optinfo$conv$lme4$messages
  c(ll_info(fit), list(
    n_clusters = as.integer(ngrps(fit)[["school"]]),
    fixed_effects = fixed_table(coef(summary(fit))),
    variance_components = c(cov_components(V),
                            list(list(name = "sigma2", term = "Residual",
                                      estimate = sigma(fit)^2))),
    random_effects_correlation = corr_rows(V),
    theta = unname(getME(fit, "theta")),
    singular = isSingular(fit),
    optimizer = fit@optinfo$optimizer,
    optimizer_conv = fit@optinfo$conv$opt,
    convergence_messages = if (is.null(conv_msgs)) character(0) else conv_msgs
  ))
}

lmer_optimizers <- c("default (nloptwrap)" = NA, bobyqa = "bobyqa", Nelder_Mead = "Nelder_Mead")

fit_lmer_model <- function(f, ref = NULL, note = NULL) {
  formula_text <- paste(deparse(f), collapse = " ")
  runs <- list()
  for (on in names(lmer_optimizers)) {
    opt <- lmer_optimizers[[on]]
    runs[[on]] <- if (is.na(opt)) {
      timed_fit(lmer(f, data = hsb, REML = FALSE))
    } else {
      timed_fit(lmer(f, data = hsb, REML = FALSE, control = lmerControl(optimizer = opt)))
    }
  }
  lls <- vapply(runs, function(r) if (is.null(r$fit)) -Inf else as.numeric(logLik(r$fit)), 0)
  default_name <- names(lmer_optimizers)[1]
  chosen <- if (max(lls) - lls[[default_name]] > 0.001) names(which.max(lls)) else default_name
  res <- runs[[chosen]]
  out <- c(
    list(package = "lme4", formula = formula_text, method = "ML",
         call = paste(deparse(res$fit@call), collapse = " "),
         figures_from = chosen),
    lmer_details(res$fit),
    list(elapsed_s = res$elapsed_s, warnings = res$warnings, messages = res$messages)
  )
  if (!is.null(note)) out$note <- note
  if (chosen != default_name) {
    out$default_optimizer_problem <- sprintf(
      paste("The default call stopped at logLik %.6f, %.6f below the best fit found (%s);",
            "it is a local optimum, not the ML estimate."),
      lls[[default_name]], max(lls) - lls[[default_name]], chosen)
  }
  out$optimizer_checks <- lapply(names(runs), function(on) {
    r <- runs[[on]]
    if (is.null(r$fit)) return(list(optimizer = on, error = r$error, elapsed_s = r$elapsed_s))
    d <- lmer_details(r$fit)
    list(optimizer = on, logLik = d$logLik, logLik_text = d$logLik_text, theta = d$theta,
         singular = d$singular, variance_components = d$variance_components,
         fixed_effects = if (on == chosen) NULL else d$fixed_effects,
         elapsed_s = r$elapsed_s, warnings = r$warnings, messages = r$messages)
  })
  if (!is.null(ref)) {
    out$design_md <- ref
    out$matches_design_md_logLik_0.001 <- abs(out$logLik - ref$logLik) < 0.001
    out$n_params_matches_design_md <- out$n_params == ref$n_params
  }
  list(summary = out, fit = res$fit)
}

f_hsb_1 <- math ~ (female + ses) * (pracad + catholic + meanses) + (1 + female + ses | school)
f_hsb_ri <- math ~ female + ses + catholic + meanses + pracad + (1 | school)
f_hsb_1_v0 <- math ~ (female + ses) * (pracad + catholic + meanses) + (1 + female | school)

models <- list()
m1 <- fit_lmer_model(f_hsb_1, design_md$hsb_1)
models$hsb_1 <- m1$summary
models$hsb_ri <- fit_lmer_model(f_hsb_ri, design_md$hsb_ri)$summary
models$hsb_1_ses_var0 <- fit_lmer_model(f_hsb_1_v0, note = paste(
  "Variance of the ses slope fixed at 0 (no ses random slope); random intercept and female",
  "slope correlated."))$summary

# Empirical Bayes school effects (conditional means and SDs) for hsb_1, from the fit whose
# figures are reported above.
re <- ranef(m1$fit, condVar = TRUE)$school
pv <- attr(re, "postVar")  # q x q x n_schools
re_terms <- colnames(re)
models$hsb_1$empirical_bayes <- list(
  description = paste(
    "ranef(fit, condVar = TRUE)$school: conditional means of the school random effects",
    "(deviations from the fixed part) and conditional SDs sqrt(diag(postVar))."),
  terms = unname(vapply(re_terms, u_name, "")),
  n_schools = nrow(re),
  schools = lapply(seq_len(nrow(re)), function(k) {
    row <- list(school = rownames(re)[k])
    for (t in seq_along(re_terms)) {
      row[[sprintf("mean_%s", u_name(re_terms[t]))]] <- re[k, t]
      row[[sprintf("sd_%s", u_name(re_terms[t]))]] <- sqrt(pv[t, t, k])
    }
    row
  })
)

# ---------------------------------------------------------------------------------------- nlme
fixed_nlme <- math ~ (female + ses) * (pracad + catholic + meanses)
fixed_text <- paste(deparse(fixed_nlme), collapse = " ")
nlme_controls <- list(
  "lmeControl(maxIter=200, msMaxIter=200, opt='optim')" =
    lmeControl(maxIter = 200, msMaxIter = 200, opt = "optim"),
  "lmeControl(maxIter=500, msMaxIter=500, niterEM=100, msMaxEval=5000) (nlminb)" =
    lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, msMaxEval = 5000)
)

# Residual variance per observation, from the fitted variance function.
resid_var_obs <- function(fit) (fit$sigma / varWeights(fit$modelStruct$varStruct))^2

lme_details <- function(fit) {
  V <- as.matrix(getVarCov(fit))
  V <- matrix(as.numeric(V), nrow(V), dimnames = list(rownames(V), colnames(V)))
  apv <- fit$apVar
  c(ll_info(fit), list(
    n_clusters = as.integer(fit$dims$ngrps[["school"]]),
    fixed_effects = fixed_table(summary(fit)$tTable),
    variance_components = c(cov_components(V),
                            list(list(name = "sigma2",
                                      term = paste("Residual: nlme sigma^2 (variance at the",
                                                   "reference level of the variance function)"),
                                      estimate = fit$sigma^2))),
    random_effects_correlation = corr_rows(V),
    varStruct_coef = as.list(coef(fit$modelStruct$varStruct, unconstrained = FALSE)),
    apVar = if (is.character(apv)) apv else "ok",
    n_iter = if (!is.null(fit$numIter)) as.integer(fit$numIter) else NULL
  ))
}

# Fit with each control; nlme errors when it does not converge, and then the 2-dimensional random
# part random = ~ 1 + female | school is tried (only if no control worked for the 3-dimensional
# one).
fit_nlme_model <- function(weights, weights_text, extra, controls, specified_control) {
  fits <- list()
  for (rnd_text in c("~ 1 + female + ses | school", "~ 1 + female | school")) {
    for (cn in names(controls)) {
      res <- timed_fit(lme(fixed_nlme, data = hsb, random = as.formula(rnd_text),
                           weights = weights, method = "ML", control = controls[[cn]]))
      entry <- list(source = "nlme", random = rnd_text, weights = weights_text, control = cn,
                    as_specified = (cn == specified_control && rnd_text == "~ 1 + female + ses | school"),
                    converged = !is.null(res$fit), error = res$error)
      if (!is.null(res$fit)) entry <- c(entry, lme_details(res$fit), extra(res$fit))
      entry <- c(entry, list(elapsed_s = res$elapsed_s, warnings = res$warnings,
                             messages = res$messages))
      fits[[length(fits) + 1]] <- entry
    }
    if (any(vapply(fits, function(e) e$converged, TRUE))) break
  }
  fits
}

# Profile check with lme4: residual variance sigma^2 / w(kappa); maximise over kappa outside.
lmer_weighted <- function(w) {
  d <- hsb
  d$w_ <- w
  fits <- lapply(c("bobyqa", "Nelder_Mead"), function(opt)
    suppressMessages(suppressWarnings(
      lmer(f_hsb_1, data = d, REML = FALSE, weights = w_,
           control = lmerControl(optimizer = opt, calc.derivs = FALSE)))))
  fits[[which.max(vapply(fits, function(f) as.numeric(logLik(f)), 0))]]
}
lmer_weighted_fast <- function(w) {
  d <- hsb
  d$w_ <- w
  as.numeric(logLik(suppressMessages(suppressWarnings(
    lmer(f_hsb_1, data = d, REML = FALSE, weights = w_,
         control = lmerControl(optimizer = "bobyqa", calc.derivs = FALSE))))))
}

profile_entry <- function(fit, n_profiled, elapsed, what, sigma2_term) {
  V <- VarCorr(fit)$school
  V <- matrix(as.numeric(V), nrow(V), dimnames = dimnames(V))
  ll <- as.numeric(logLik(fit))
  c(list(source = "lme4 profile", random = "~ 1 + female + ses | school", method = what),
    ll_fields(ll, attr(logLik(fit), "df") + n_profiled),
    list(fixed_effects = fixed_table(coef(summary(fit))),
         fixed_effects_se_note = paste(
           "SEs are conditional on the variance-function parameters (held at their",
           "estimates); they are not from the full information matrix."),
         variance_components = c(cov_components(V),
                                 list(list(name = "sigma2", term = sigma2_term,
                                           estimate = sigma(fit)^2))),
         random_effects_correlation = corr_rows(V),
         singular = isSingular(fit),
         elapsed_s = elapsed))
}

# Check that lmer's weighted log-likelihood is on nlme's scale (random intercept + varIdent,
# where nlme converges reliably).
scale_check <- local({
  f_ri_fixed <- math ~ female + ses + catholic + meanses + pracad
  n_ri <- lme(f_ri_fixed, data = hsb, random = ~ 1 | school,
              weights = varIdent(form = ~ 1 | catholic), method = "ML")
  prof <- function(lr) {
    d <- hsb
    d$w_ <- exp(-2 * lr * hsb$catholic)
    as.numeric(logLik(lmer(math ~ female + ses + catholic + meanses + pracad + (1 | school),
                           data = d, REML = FALSE, weights = w_)))
  }
  o <- optimize(prof, c(-1, 1), maximum = TRUE, tol = 1e-9)
  list(model = "math ~ female + ses + catholic + meanses + pracad, random = ~1|school, varIdent(~1|catholic)",
       nlme_logLik = as.numeric(logLik(n_ri)), lme4_profile_logLik = o$objective,
       abs_diff = abs(as.numeric(logLik(n_ri)) - o$objective))
})
stopifnot(scale_check$abs_diff < 0.01)

pick_best <- function(fits) {
  lls <- vapply(fits, function(e) if (isTRUE(e$converged) || e$source == "lme4 profile")
    e$logLik else -Inf, 0)
  fits[[which.max(lls)]]
}

nlme_summary <- function(fits, extra_note) {
  best <- pick_best(fits)
  keep <- c("source", "random", "control", "method", "logLik", "logLik_text", "n_params", "BIC",
            "AIC", "n_obs", "elapsed_s", "fixed_effects", "variance_components", "random_effects_correlation",
            "residual_variances", "log_variance")
  top <- best[intersect(keep, names(best))]
  spec <- Filter(function(e) isTRUE(e$as_specified), fits)
  notes <- c(extra_note, if (length(spec) == 1) {
    if (isTRUE(spec[[1]]$converged)) {
      sprintf("The nlme call as specified (%s) reached logLik %.6f, %.6f below the best fit found (%s).",
              spec[[1]]$control, spec[[1]]$logLik, best$logLik - spec[[1]]$logLik, best$source)
    } else {
      sprintf("The nlme call as specified (%s) failed: %s", spec[[1]]$control, spec[[1]]$error)
    }
  })
  c(list(figures_from = paste(best$source, if (!is.null(best$control)) best$control else "")),
    top, list(notes = notes, lme4_weighted_loglik_scale_check = scale_check, fits = fits))
}

# hsb_1c: separate residual variance for catholic vs public schools.
extra_1c <- function(fit) {
  rv <- resid_var_obs(fit)
  by_cath <- tapply(rv, hsb$catholic, function(v) {
    stopifnot(diff(range(v)) < 1e-8 * max(v))
    v[1]
  })
  list(residual_variances = list(
    list(name = "sigma2[catholic=0]", catholic = 0L, estimate = unname(by_cath[["0"]])),
    list(name = "sigma2[catholic=1]", catholic = 1L, estimate = unname(by_cath[["1"]]))))
}
fits_1c <- fit_nlme_model(varIdent(form = ~ 1 | catholic), "varIdent(form = ~ 1 | catholic)",
                          extra_1c, nlme_controls, names(nlme_controls)[1])
t_prof <- system.time({
  o <- optimize(function(lr) lmer_weighted_fast(exp(-2 * lr * hsb$catholic)), c(-1, 1),
                maximum = TRUE, tol = 1e-9)
  pf <- lmer_weighted(exp(-2 * o$maximum * hsb$catholic))
})
p1c <- profile_entry(pf, 1L, unname(t_prof[["elapsed"]]),
                     "lmer with weights exp(-2*log(r)*catholic), log(r) by optimize()",
                     "Residual variance for catholic = 0")
p1c$residual_variances <- list(
  list(name = "sigma2[catholic=0]", catholic = 0L, estimate = sigma(pf)^2),
  list(name = "sigma2[catholic=1]", catholic = 1L, estimate = sigma(pf)^2 * exp(2 * o$maximum)))
p1c$sd_ratio_catholic1_to_0 <- exp(o$maximum)
fits_1c[[length(fits_1c) + 1]] <- p1c
models$hsb_1c <- nlme_summary(fits_1c, paste(
  "Residual variances: sigma^2 times the squared varIdent multiplier of each stratum",
  "(reference stratum multiplier 1)."))

# hsb_1b: residual variance log-linear in female and ses, log sigma2_ij = k0 + k1*female + k2*ses.
extra_1b <- function(fit) {
  # The per-observation log variance from nlme's variance function is exactly linear in female
  # and ses; a least-squares fit on (1, female, ses) recovers k0, k1, k2 with zero residual.
  # Equivalently log variance = log sigma^2 + 2*log(ratio)*[female = non-reference level]
  # + 2*t*ses, with ratio from varIdent and t from varExp.
  lv <- log(resid_var_obs(fit))
  lf <- lm(lv ~ female + ses, data = hsb)
  k <- unname(coef(lf))
  stopifnot(max(abs(residuals(lf))) < 1e-8)
  list(log_variance = list(
    formula = "log sigma2_ij = k0 + k1*female + k2*ses",
    k0 = k[1], k1 = k[2], k2 = k[3],
    nlme_parameters = list(sigma = fit$sigma,
                           varStruct = as.list(coef(fit$modelStruct$varStruct,
                                                    unconstrained = FALSE)))))
}
fits_1b <- fit_nlme_model(varComb(varIdent(form = ~ 1 | female), varExp(form = ~ ses)),
                          "varComb(varIdent(form = ~ 1 | female), varExp(form = ~ ses))",
                          extra_1b,
                          c(list("lmeControl() (defaults)" = lmeControl()), nlme_controls),
                          "lmeControl() (defaults)")
w_1b <- function(k) exp(-(k[1] * hsb$female + k[2] * hsb$ses))
t_prof <- system.time({
  negll <- function(k) -lmer_weighted_fast(w_1b(k))
  o <- optim(c(0, 0), negll, control = list(reltol = 1e-12))
  o <- optim(o$par, negll, control = list(reltol = 1e-12))  # restart Nelder-Mead
  pf <- lmer_weighted(w_1b(o$par))
})
p1b <- profile_entry(pf, 2L, unname(t_prof[["elapsed"]]),
                     "lmer with weights exp(-(k1*female + k2*ses)), (k1, k2) by Nelder-Mead",
                     "Residual variance at female = 0, ses = 0 (= exp(k0))")
p1b$log_variance <- list(formula = "log sigma2_ij = k0 + k1*female + k2*ses",
                         k0 = log(sigma(pf)^2), k1 = o$par[1], k2 = o$par[2])
fits_1b[[length(fits_1b) + 1]] <- p1b
models$hsb_1b <- nlme_summary(fits_1b, NULL)

# Calibration: hsb_1 itself (no variance function) in nlme, against lme4's maximum.
models$hsb_1_nlme_check <- list(
  note = paste("hsb_1 fitted with nlme (no weights), to show how close nlme's optimiser gets",
               "to lme4's maximum on this boundary (singular) problem."),
  lme4_logLik = models$hsb_1$logLik,
  fits = lapply(names(nlme_controls), function(cn) {
    res <- timed_fit(lme(fixed_nlme, data = hsb, random = ~ 1 + female + ses | school,
                         method = "ML", control = nlme_controls[[cn]]))
    if (is.null(res$fit)) return(list(control = cn, converged = FALSE, error = res$error))
    ll <- as.numeric(logLik(res$fit))
    list(control = cn, converged = TRUE, logLik = ll, logLik_text = sprintf("%.6f", ll),
         n_params = as.integer(attr(logLik(res$fit), "df")),
         shortfall_vs_lme4 = models$hsb_1$logLik - ll, elapsed_s = res$elapsed_s,
         warnings = res$warnings)
  })
)

out <- list(
  description = paste(
    "ML fits of the HSB models in R (lme4, nlme), variables uncentred, as reference figures",
    "for bayesmix tests. Made by tests/reference/hsb_lme4.R; see the comments at its top for",
    "how the top-level figures of each model are chosen."),
  command = paste("Rscript tests/reference/hsb_lme4.R", csv_path, out_path),
  data = list(path = csv_path, n_obs = n_obs, n_schools = nlevels(hsb$school)),
  versions = versions,
  created = format(Sys.time(), "%Y-%m-%dT%H:%M:%S%z"),
  models = models
)

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null",
                  na = "null"), out_path)
cat("wrote", out_path, "\n")
for (nm in setdiff(names(models), "hsb_1_nlme_check")) {
  mm <- models[[nm]]
  cat(sprintf("%-16s logLik %s  df %d  BIC %.3f  from %s\n", nm, mm$logLik_text, mm$n_params,
              mm$BIC, mm$figures_from))
}
