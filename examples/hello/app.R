# The example app that `make run` deploys: a slider and a plot.
library(shiny)

ui <- fluidPage(
  titlePanel("Hello from byd"),
  sidebarLayout(
    sidebarPanel(
      sliderInput("n", "Number of observations", min = 10, max = 1000,
                  value = 200)
    ),
    mainPanel(
      plotOutput("hist"),
      textOutput("summary")
    )
  )
)

server <- function(input, output, session) {
  x <- reactive(rnorm(input$n))
  output$hist <- renderPlot(hist(x(), main = NULL, col = "steelblue",
                                 border = "white", xlab = "x"))
  output$summary <- renderText(sprintf("n = %d, mean = %.3f", input$n,
                                       mean(x())))
}

shinyApp(ui, server)
